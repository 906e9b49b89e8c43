//! Where a caller stands in a project: the project (found by slug) and the
//! caller's membership role, cached in-process so the authorization check
//! on the hot path costs no database round trip.
//!
//! The cache holds copies of rows, not decisions: every request still runs
//! `security::rbac::decide` on them. Entries are dropped locally the moment
//! this replica changes a membership or a project, and live at most
//! `CACHE_TTL`, so a change made through another replica takes effect here
//! within that time (the same contract as the session cache).
//!
//! A load that raced with an invalidation must not put the stale row back:
//! every invalidation bumps a generation counter, and a load only stores
//! its result if the generation is unchanged since it started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use uuid::Uuid;

use crate::error::ApiError;
use crate::security::rbac::Role;
use crate::state::AppState;
use crate::store::projects::{self, ProjectRef};

pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// What the cache knows about one (slug, user) pair.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// No project has this slug.
    NoProject,
    /// The project, and the user's role in it (`None`: not a member).
    Found(Arc<ProjectRef>, Option<Role>),
}

pub struct AuthzCache {
    projects: Cache<String, Option<Arc<ProjectRef>>>,
    roles: Cache<(Uuid, Uuid), Option<Role>>,
    generation: AtomicU64,
    loads: AtomicU64,
}

impl Default for AuthzCache {
    fn default() -> Self {
        AuthzCache::with_ttl(CACHE_TTL)
    }
}

impl AuthzCache {
    /// The server always uses `CACHE_TTL`; the benchmark uses a longer one
    /// so entries do not expire mid-measurement (a hit costs the same).
    pub fn with_ttl(ttl: Duration) -> AuthzCache {
        AuthzCache {
            projects: Cache::builder().max_capacity(20_000).time_to_live(ttl).build(),
            roles: Cache::builder().max_capacity(200_000).time_to_live(ttl).support_invalidation_closures().build(),
            generation: AtomicU64::new(0),
            loads: AtomicU64::new(0),
        }
    }

    /// The cached answer, or `None` on a miss (the caller loads it).
    pub fn cached(&self, slug: &str, user_id: Uuid) -> Option<Lookup> {
        match self.projects.get(slug)? {
            None => Some(Lookup::NoProject),
            Some(project) => {
                let role = self.roles.get(&(user_id, project.id))?;
                Some(Lookup::Found(project, role))
            }
        }
    }

    /// Current generation; pass it back to `remember` after loading.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Store a loaded answer unless something was invalidated meanwhile.
    pub fn remember(&self, generation: u64, slug: &str, user_id: Uuid, found: &Lookup) {
        if self.generation() != generation {
            return;
        }
        match found {
            Lookup::NoProject => self.projects.insert(slug.to_string(), None),
            Lookup::Found(project, role) => {
                self.projects.insert(slug.to_string(), Some(project.clone()));
                self.roles.insert((user_id, project.id), *role);
            }
        }
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A project was created, renamed, archived or restored.
    pub fn forget_project(&self, slug: &str) {
        self.bump();
        self.projects.invalidate(slug);
    }

    /// A membership was granted, changed or removed.
    pub fn forget_membership(&self, user_id: Uuid, project_id: Uuid) {
        self.bump();
        self.roles.invalidate(&(user_id, project_id));
    }

    /// A user was deleted (their memberships went with them).
    pub fn forget_user(&self, user_id: Uuid) {
        self.bump();
        let _ = self.roles.invalidate_entries_if(move |(u, _), _| *u == user_id);
    }

    /// How many lookups went to the database since start-up (a test uses it
    /// to prove that the warm path does not).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
}

impl AppState {
    /// The project with `slug` and the user's role in it: from the cache,
    /// or one query on a miss.
    pub async fn project_lookup(&self, slug: &str, user_id: Uuid) -> Result<Lookup, ApiError> {
        if let Some(hit) = self.authz.cached(slug, user_id) {
            return Ok(hit);
        }
        let generation = self.authz.generation();
        self.authz.loads.fetch_add(1, Ordering::Relaxed);
        let conn = self.db.conn().await?;
        let found = match projects::access(&conn, slug, user_id).await? {
            None => Lookup::NoProject,
            Some((project, role)) => Lookup::Found(Arc::new(project), role),
        };
        self.authz.remember(generation, slug, user_id, &found);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(slug: &str) -> Arc<ProjectRef> {
        Arc::new(ProjectRef { id: Uuid::new_v4(), slug: slug.into(), archived: false })
    }

    #[test]
    fn hits_misses_and_invalidation() {
        let cache = AuthzCache::default();
        let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
        let p = project("alpha");
        assert!(cache.cached("alpha", user).is_none());
        let g = cache.generation();
        cache.remember(g, "alpha", user, &Lookup::Found(p.clone(), Some(Role::Operator)));
        assert!(matches!(cache.cached("alpha", user), Some(Lookup::Found(_, Some(Role::Operator)))));
        // The project is known but this user's role is not: a miss.
        assert!(cache.cached("alpha", other).is_none());
        cache.forget_membership(user, p.id);
        assert!(cache.cached("alpha", user).is_none());
        cache.remember(cache.generation(), "nope", user, &Lookup::NoProject);
        assert!(matches!(cache.cached("nope", user), Some(Lookup::NoProject)));
        cache.forget_project("nope");
        assert!(cache.cached("nope", user).is_none());
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_stored() {
        let cache = AuthzCache::default();
        let user = Uuid::new_v4();
        let p = project("beta");
        let g = cache.generation();
        // Meanwhile another request demotes the user.
        cache.forget_membership(user, p.id);
        cache.remember(g, "beta", user, &Lookup::Found(p, Some(Role::Admin)));
        assert!(cache.cached("beta", user).is_none());
    }
}
