//! `palisade admin create`: the scripted way to make a global admin.

use std::io::BufRead;

use crate::config::Config;
use crate::security::email;
use crate::security::password::PasswordHasher;
use crate::security::password_policy::PasswordPolicy;
use crate::server::Database;
use crate::store::{migrate, users, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("email address is not valid")]
    Email,
    #[error("password rejected ({rule}): {message}")]
    Weak { rule: &'static str, message: String },
    #[error("no password on standard input")]
    NoPassword,
    #[error("a user with this email already exists")]
    Exists,
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hash,
}

pub fn read_password(input: impl BufRead) -> Result<String, AdminError> {
    let line = input.lines().next().ok_or(AdminError::NoPassword)?.map_err(|_| AdminError::NoPassword)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(AdminError::NoPassword);
    }
    Ok(pw)
}

pub async fn create(
    config: &Config,
    raw_email: &str,
    password: &str,
    display_name: &str,
) -> Result<users::User, AdminError> {
    let email = email::normalize(raw_email).map_err(|_| AdminError::Email)?;
    PasswordPolicy::default()
        .check(password, Some(&email))
        .map_err(|v| AdminError::Weak { rule: v.rule(), message: v.message() })?;
    let database = Database::open(config).await?;
    let result = async {
        migrate::run(&database.db).await?;
        let phc = PasswordHasher::new(1).hash(password).await.map_err(|_| AdminError::Hash)?;
        let conn = database.db.conn().await?;
        let new = users::NewUser { email: &email, display_name, password_hash: &phc, is_admin: true };
        match users::insert(&conn, &new, chrono::Utc::now()).await {
            Ok(u) => Ok(u),
            Err(StoreError::Conflict(_)) => Err(AdminError::Exists),
            Err(e) => Err(e.into()),
        }
    }
    .await;
    database.close().await;
    result
}
