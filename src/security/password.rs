//! Argon2id hashing on a bounded blocking pool.
//!
//! One verify at m=64 MiB, t=3, p=4 costs ~200 ms of CPU. Running it on the
//! async runtime would stall every other request on that worker thread, and
//! running an unbounded number at once would let a login flood exhaust
//! memory (64 MiB each). So hashing goes to `spawn_blocking` behind a
//! semaphore sized to the cores: excess logins wait their turn, and the
//! limiter and lockout (consulted before we get here) keep the queue short.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

/// The parameters the product promises (and the tests read back from the
/// users table): Argon2id v19, 64 MiB, 3 passes, 4 lanes, 16-byte salt
/// (the library's default salt length), 32-byte output.
pub const MEMORY_KIB: u32 = 65_536;
pub const TIME_COST: u32 = 3;
pub const PARALLELISM: u32 = 4;
pub const OUTPUT_LEN: usize = 32;
pub const PHC_PREFIX: &str = "$argon2id$v=19$m=65536,t=3,p=4$";

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed")]
    Argon2,
    #[error("password hashing pool is shut down")]
    PoolClosed,
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, TIME_COST, PARALLELISM, Some(OUTPUT_LEN)).map_err(|_| HashError::Argon2)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_now(password: &[u8]) -> Result<String, HashError> {
    let hash = argon2()?.hash_password(password).map_err(|_| HashError::Argon2)?;
    Ok(hash.to_string())
}

fn verify_now(password: &[u8], phc: &str) -> bool {
    // Parameters come from the stored string, so hashes made under older
    // settings still verify; a malformed string simply does not match.
    match (argon2(), PasswordHash::new(phc)) {
        (Ok(a), Ok(parsed)) => a.verify_password(password, &parsed).is_ok(),
        _ => false,
    }
}

/// True when a stored hash is weaker than the current parameters and should
/// be replaced after the next successful login. Never downgrades.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    let get = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
    get("m") < MEMORY_KIB || get("t") < TIME_COST || get("p") < PARALLELISM
}

/// Shared handle to the hashing pool.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    dummy: Arc<OnceCell<String>>,
    verifications: Arc<AtomicU64>,
}

impl PasswordHasher {
    /// `concurrency` hashes may run at once (normally the core count).
    pub fn new(concurrency: usize) -> PasswordHasher {
        PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceCell::new()),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::PoolClosed)?;
        tokio::task::spawn_blocking(job).await.map_err(|_| HashError::PoolClosed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let pw = Zeroizing::new(password.as_bytes().to_vec());
        self.run(move || hash_now(&pw)).await?
    }

    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, HashError> {
        let pw = Zeroizing::new(password.as_bytes().to_vec());
        let phc = phc.to_string();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        self.run(move || verify_now(&pw, &phc)).await
    }

    /// Argon2 verifications run so far (known and dummy alike); lets tests
    /// prove an unknown-account login pays for exactly one verification.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verify against a throwaway hash with the live parameters, so a login
    /// for an unknown account costs exactly what a real one costs and the
    /// response time does not reveal whether the account exists.
    async fn dummy_hash(&self) -> Result<String, HashError> {
        let hash = self
            .dummy
            .get_or_try_init(|| async {
                let secret = crate::security::tokens::mint();
                self.hash(&secret).await
            })
            .await?;
        Ok(hash.clone())
    }

    /// Verify against a throwaway hash with the live parameters, so a login
    /// for an unknown account costs exactly what a real one costs and the
    /// response time does not reveal whether the account exists.
    pub async fn verify_dummy(&self, password: &str) -> Result<bool, HashError> {
        let dummy = self.dummy_hash().await?;
        self.verify(password, &dummy).await.map(|_| false)
    }

    /// Build the dummy hash in the background at start-up so the first
    /// unknown-user login is not slower than the rest (and start-up does not
    /// wait for it).
    pub fn warm_up(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.dummy_hash().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_has_the_promised_parameters_and_verifies() {
        let hasher = PasswordHasher::new(2);
        let phc = hasher.hash("Correct-Horse-9").await.unwrap();
        assert!(phc.starts_with(PHC_PREFIX), "{phc}");
        let parts: Vec<&str> = phc.split('$').collect();
        // salt is 16 bytes -> 22 unpadded b64 chars; hash 32 bytes -> 43.
        assert_eq!(parts[4].len(), 22);
        assert_eq!(parts[5].len(), 43);
        assert!(hasher.verify("Correct-Horse-9", &phc).await.unwrap());
        assert!(!hasher.verify("correct-horse-9", &phc).await.unwrap());
        assert!(!hasher.verify("x", "not a phc string").await.unwrap());
        assert!(!needs_rehash(&phc));
        assert!(!hasher.verify_dummy("anything").await.unwrap());
    }

    #[test]
    fn weaker_hashes_need_rehash() {
        assert!(needs_rehash(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
        ));
        assert!(needs_rehash("garbage"));
    }
}
