//! The route table as data. Every API route is one `Route` entry: method,
//! path pattern, who may call it, and the handler. Because it is data, the
//! permission-matrix test can enumerate it, and a new route without an
//! access rule cannot exist (the field is not optional).

use std::future::Future;
use std::pin::Pin;

use warp::http::Method;

use super::request::Req;
use crate::error::ApiError;
use crate::security::rbac::{Action, Scope};

pub type Response = warp::reply::Response;
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;
pub type Handler = fn(Req) -> HandlerFuture;

/// Who may call a route. Checked by the dispatcher before the handler runs
/// (and before the body is parsed). Only `Listing` and `Project` routes can
/// be reached with an API key; everything else needs a browser session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler applies its own rate limits. An `Authorization`
    /// header is not even looked at.
    Public,
    /// Any signed-in user, by browser session only (self-service: `/auth/*`,
    /// the user's own API keys).
    User,
    /// Users with the global admin flag, by browser session only.
    GlobalAdmin,
    /// Any signed-in user, or an API key holding the scope; the handler
    /// shows only what the caller may see (e.g. the project list).
    Listing(Scope),
    /// A route under `/projects/{slug}`: the dispatcher resolves the project
    /// and the caller's standing in it and asks `security::rbac` whether the
    /// action is allowed. Non-members get 403.
    Project(Action),
    /// The agent long-poll transport: an agent bearer token (not a user,
    /// not an API key); every frame in the body is verified on its own.
    Agent,
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
    /// Unsafe methods under session auth need the CSRF header unless this is
    /// set; only routes used before a session exists opt out.
    pub csrf_exempt: bool,
}

/// `route!(POST "/api/v1/auth/login", Public, csrf_exempt, auth::login)`;
/// the access expression is evaluated where the table imports `Access`'s
/// and `Action`'s variants, e.g. `Project(RetryTask)`.
#[macro_export]
macro_rules! route {
    ($method:ident $path:literal, $access:expr, csrf_exempt, $handler:path) => {
        $crate::routes::router::Route {
            method: warp::http::Method::$method,
            path: $path,
            access: $access,
            handler: |r| Box::pin($handler(r)),
            csrf_exempt: true,
        }
    };
    ($method:ident $path:literal, $access:expr, $handler:path) => {
        $crate::routes::router::Route {
            method: warp::http::Method::$method,
            path: $path,
            access: $access,
            handler: |r| Box::pin($handler(r)),
            csrf_exempt: false,
        }
    };
}

enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

pub struct Router {
    routes: Vec<(Vec<Seg>, Route)>,
}

pub enum Found<'a> {
    Route(&'a Route, Vec<(&'static str, String)>),
    MethodNotAllowed(String),
    NotFound,
}

fn split(path: &'static str) -> Vec<Seg> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => Seg::Param(name),
            None => Seg::Lit(s),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RouteTableError {
    #[error("{0} {1}: a Project route must have a {{slug}} path segment")]
    ProjectWithoutSlug(Method, &'static str),
    #[error("{0} {1}: a path with {{slug}} must use Access::Project")]
    SlugWithoutProject(Method, &'static str),
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes: routes.into_iter().map(|r| (split(r.path), r)).collect() }
    }

    /// The table's structural rule: `{slug}` routes, and only they, are
    /// project routes, so no project route can skip the membership check.
    pub fn check(&self) -> Result<(), RouteTableError> {
        for (segs, r) in &self.routes {
            let has_slug = segs.iter().any(|s| matches!(s, Seg::Param("slug")));
            match (r.access, has_slug) {
                (Access::Project(_), false) => {
                    return Err(RouteTableError::ProjectWithoutSlug(r.method.clone(), r.path))
                }
                (Access::Project(_), true) | (_, false) => {}
                (_, true) => return Err(RouteTableError::SlugWithoutProject(r.method.clone(), r.path)),
            }
        }
        Ok(())
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(_, r)| r)
    }

    pub fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut allowed: Vec<&str> = Vec::new();
        for (segs, route) in &self.routes {
            let Some(params) = matches(segs, &parts) else {
                continue;
            };
            let same = route.method == *method || (*method == Method::HEAD && route.method == Method::GET);
            if same {
                return Found::Route(route, params);
            }
            allowed.push(route.method.as_str());
        }
        if allowed.is_empty() {
            Found::NotFound
        } else {
            allowed.sort_unstable();
            allowed.dedup();
            Found::MethodNotAllowed(allowed.join(", "))
        }
    }
}

fn matches(segs: &[Seg], parts: &[&str]) -> Option<Vec<(&'static str, String)>> {
    if segs.len() != parts.len() {
        return None;
    }
    let mut params = Vec::new();
    for (seg, part) in segs.iter().zip(parts) {
        match seg {
            Seg::Lit(l) if l == part => {}
            Seg::Lit(_) => return None,
            Seg::Param(name) => {
                if part.is_empty() {
                    return None;
                }
                let decoded = percent_encoding::percent_decode_str(part).decode_utf8().ok()?;
                params.push((*name, decoded.into_owned()));
            }
        }
    }
    Some(params)
}
