//! Setting up what a scenario needs through the brain's own API: the admin
//! session, the project, and minted agent credentials.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::agent::Credential;
use crate::client::Session;
use crate::flavor::Flavor;

/// Makes sure `project` exists, creating it when the brain answers 404.
pub async fn ensure_project(admin: &Session, flavor: Flavor, project: &str) -> anyhow::Result<()> {
    let reply = admin.send(&flavor.project(project)).await?;
    if reply.status.is_success() {
        return Ok(());
    }
    if reply.status.as_u16() != 404 {
        bail!("GET project {project} answered {}", reply.status);
    }
    let created = admin.send(&flavor.create_project(project)).await?;
    if !created.status.is_success() {
        bail!(
            "creating project {project} answered {} ({})",
            created.status,
            String::from_utf8_lossy(&created.body).chars().take(200).collect::<String>()
        );
    }
    Ok(())
}

/// Mints `count` agents named `<prefix>-<i>`.
pub async fn mint_agents(
    admin: &Session,
    flavor: Flavor,
    project: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Credential>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let reply = admin.send(&flavor.mint_agent(project, &format!("{prefix}-{i}"))).await?;
        if !reply.status.is_success() {
            bail!(
                "minting agent {i} answered {} ({}); the agent endpoints may not exist on this brain yet",
                reply.status,
                String::from_utf8_lossy(&reply.body).chars().take(200).collect::<String>()
            );
        }
        out.push(parse_credential(&reply.json()?)?);
    }
    Ok(out)
}

/// `{agent:{id}, token, hmac_secret}` → a credential.
pub fn parse_credential(v: &Value) -> anyhow::Result<Credential> {
    let token = v.get("token").and_then(Value::as_str).context("mint response has no token")?;
    let secret = v.get("hmac_secret").and_then(Value::as_str).context("mint response has no hmac_secret")?;
    let agent_id = v.get("agent").and_then(|a| a.get("id")).and_then(Value::as_str).map(str::to_owned);
    Ok(Credential { token: token.to_owned(), hmac_secret: secret.to_owned(), agent_id })
}

/// Reads credentials saved with `--save-credentials` (a JSON array).
pub fn read_credentials(path: &Path) -> anyhow::Result<Vec<Credential>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let creds: Vec<Credential> = serde_json::from_str(&text).context("credentials file is not a JSON array")?;
    if creds.is_empty() {
        bail!("{} holds no credentials", path.display());
    }
    Ok(creds)
}

/// Writes credentials with owner-only permissions: they are live agent
/// secrets of the target brain.
pub fn write_credentials(path: &Path, creds: &[Credential]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(creds)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_mint_response() {
        let v = json!({"agent": {"id": "a-1"}, "token": "t", "hmac_secret": "k="});
        let c = parse_credential(&v).unwrap();
        assert_eq!((c.token.as_str(), c.hmac_secret.as_str(), c.agent_id.as_deref()), ("t", "k=", Some("a-1")));
        assert!(parse_credential(&json!({"token": "t"})).is_err());
    }

    #[test]
    fn credentials_round_trip_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("lt-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        let creds = vec![Credential { token: "t".into(), hmac_secret: "k".into(), agent_id: None }];
        write_credentials(&path, &creds).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_credentials(&path).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
