//! The access layer: turns what a call presented into a caller, by the server's
//! policy (anonymous mode, the configured admin token) and the stored tokens,
//! and manages the tokens themselves ([`tokens`]). No HTTP types: the HTTP
//! layer hands it the `Authorization` header's value. The rules it applies
//! (roles, scopes, who may record an event) are the domain's.

mod hooks;
mod secret;
pub mod tokens;

use deploytime_core::access::{
    Caller, Credential, Denied, TokenDigest, TokenLookup, check_role, identify,
};
use subtle::ConstantTimeEq;

use crate::db::{Database, DbError, tokens as stored_tokens};

pub use deploytime_core::access::{Role, Scope};
pub use hooks::{HookSecrets, HookSecretsError};
pub use secret::Secret;

/// How the server decides who may call; built once at start-up.
#[derive(Clone)]
pub struct AccessPolicy {
    /// While no token exists, anonymous calls are served (loopback bind, or
    /// `--allow-anonymous`).
    anonymous_when_no_tokens: bool,
    /// The digest of `DEPLOYTIME_ADMIN_TOKEN`, kept in memory only.
    bootstrap_admin: Option<TokenDigest>,
}

/// Why the access check did not admit a call.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The stored tokens could not be read.
    #[error(transparent)]
    Database(#[from] DbError),
}

impl AccessPolicy {
    pub fn new(anonymous_when_no_tokens: bool, admin_token: Option<&Secret>) -> Self {
        AccessPolicy {
            anonymous_when_no_tokens,
            bootstrap_admin: admin_token.map(|t| TokenDigest::of(t.expose())),
        }
    }

    /// Reads the credential from the `Authorization` header's raw value. Only
    /// the configured admin token is recognised here; a bearer token is still
    /// to be checked against the stored ones.
    pub fn present(&self, authorization: Option<&[u8]>) -> Result<Credential, Denied> {
        let Some(value) = authorization else {
            return if self.anonymous_when_no_tokens && self.bootstrap_admin.is_none() {
                Ok(Credential::Anonymous)
            } else {
                Err(Denied::needs_token())
            };
        };
        let token = std::str::from_utf8(value)
            .ok()
            .filter(|v| v.is_ascii())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Denied::Unauthenticated("the Authorization header must be `Bearer TOKEN`".into())
            })?;
        let digest = TokenDigest::of(token);
        if let Some(admin) = &self.bootstrap_admin
            && bool::from(admin.as_bytes().ct_eq(digest.as_bytes()))
        {
            return Ok(Credential::BootstrapAdmin);
        }
        Ok(Credential::Token(digest))
    }
}

/// What one per-call lookup learnt of the stored tokens.
struct Looked {
    empty: bool,
    found: Option<Caller>,
}

impl TokenLookup for Looked {
    fn is_empty(&self) -> bool {
        self.empty
    }

    fn find(&self, _digest: &TokenDigest) -> Option<Caller> {
        self.found.clone()
    }
}

/// Who presented `credential`, asking the database what the answer needs.
async fn resolve(credential: &Credential, db: &Database) -> Result<Caller, AccessError> {
    let looked = match credential {
        Credential::BootstrapAdmin => Looked {
            empty: false,
            found: None,
        },
        Credential::Anonymous => Looked {
            empty: !db.read(stored_tokens::any_token).await?,
            found: None,
        },
        Credential::Webhook(_) => Looked {
            empty: false,
            found: None,
        },
        Credential::Token(digest) => {
            let digest = *digest;
            Looked {
                empty: false,
                found: db
                    .read(move |conn| stored_tokens::find_caller(conn, &digest))
                    .await?,
            }
        }
    };
    Ok(identify(credential, &looked)?)
}

/// Authenticates a call and checks that the caller's role allows `needed`.
///
/// Store calls (`ingest`) may be admitted from the in-memory copy of the tokens,
/// because the group commit checks each of them again against the tokens as
/// they are when it runs; a refusal is never taken from the copy (a token may
/// have been created since it was read) but asked of the database. Every other
/// call asks the database.
pub async fn authorize(
    policy: &AccessPolicy,
    db: &Database,
    authorization: Option<&[u8]>,
    needed: Role,
) -> Result<(Caller, Credential), AccessError> {
    let credential = policy.present(authorization)?;
    let cached = (needed == Role::Ingest)
        .then(|| db.tokens().current())
        .flatten()
        .and_then(|snapshot| identify(&credential, snapshot.as_ref()).ok());
    let caller = match cached {
        Some(caller) => caller,
        None => resolve(&credential, db).await?,
    };
    check_role(&caller, needed)?;
    Ok((caller, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "bootstrap-admin-token-0123456789abcdef";

    #[test]
    fn the_header_is_a_bearer_token_or_nothing() {
        let policy = AccessPolicy::new(true, None);
        assert_eq!(policy.present(None), Ok(Credential::Anonymous));
        assert_eq!(
            policy.present(Some(b"Bearer dt_abc")),
            Ok(Credential::Token(TokenDigest::of("dt_abc")))
        );
        assert_eq!(
            policy.present(Some(b"bearer   dt_abc ")),
            Ok(Credential::Token(TokenDigest::of("dt_abc")))
        );
        for bad in [
            &b"Basic dt_abc"[..],
            b"Bearer ",
            b"dt_abc",
            b"Bearer d\xc3\xa9",
        ] {
            assert!(
                matches!(policy.present(Some(bad)), Err(Denied::Unauthenticated(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_configured_admin_token_ends_anonymous_mode() {
        let policy = AccessPolicy::new(true, Some(&Secret::new(ADMIN)));
        assert_eq!(policy.present(None), Err(Denied::needs_token()));
        assert_eq!(
            policy.present(Some(format!("Bearer {ADMIN}").as_bytes())),
            Ok(Credential::BootstrapAdmin)
        );
        assert_eq!(
            AccessPolicy::new(false, None).present(None),
            Err(Denied::needs_token()),
            "a server on the network never serves anonymous calls unless told to"
        );
    }
}
