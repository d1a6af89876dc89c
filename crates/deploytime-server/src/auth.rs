//! Access control: bearer tokens with roles, and the anonymous mode of a server
//! that nobody else can reach.
//!
//! * `ingest` may record events (`POST /api/v1/events`), within its scope;
//! * `read` may call the `GET` endpoints;
//! * `admin` may do everything, deletions included.
//!
//! A token is 256 random bits, shown once when it is created and stored only as
//! its SHA-256. While no token exists at all, a server bound to a loopback
//! address (or started with `--allow-anonymous`) serves anonymous calls.
//!
//! A revocation takes effect on the next request, whichever process made it:
//!
//! * reading calls look the presented token up in the database, every time;
//! * store calls, which come in bursts from every pipeline at once, are checked
//!   against an in-memory copy of the tokens ([`TokenCache`]), and checked again
//!   by the group commit that stores them, against the tokens as they are when
//!   that commit runs: one small query per commit tells whether any token was
//!   created or revoked since the copy was read ([`crate::db::tokens::fingerprint`]).
//!   So a store call costs no database round trip of its own for its access
//!   check, and a revoked token stores nothing.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::tokens::{self, TokenRow, TokensFingerprint};
use crate::db::{Database, DbConnection, DbError};
use crate::error::ApiError;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Record events (`POST /api/v1/events`) and nothing else.
    Ingest,
    /// Read: every `GET` endpoint.
    Read,
    /// Everything, deletions included.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether a holder of this role may make a call that needs `needed`.
    pub fn grants(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The components and environments a token may record events for; an empty list
/// allows any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub components: Vec<String>,
    pub environments: Vec<String>,
}

impl Scope {
    /// Reads `component=NAME` and `environment=NAME` entries, as given to
    /// `token create --scope`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut scope = Scope::default();
        for entry in entries {
            let entry = entry.as_ref();
            let Some((kind, name)) = entry.split_once('=') else {
                return Err(format!(
                    "scope {entry:?}: write component=NAME or environment=NAME"
                ));
            };
            match kind.trim() {
                "component" => {
                    deploytime_core::Component::parse(name.trim())
                        .map_err(|e| format!("scope {entry:?}: the component {e}"))?;
                    scope.components.push(name.trim().to_owned());
                }
                "environment" => {
                    deploytime_core::Environment::parse(name.trim())
                        .map_err(|e| format!("scope {entry:?}: the environment {e}"))?;
                    scope.environments.push(name.trim().to_owned());
                }
                other => {
                    return Err(format!(
                        "scope {entry:?}: {other:?} is neither component nor environment"
                    ));
                }
            }
        }
        Ok(scope)
    }

    pub fn allows(&self, component: &str, environment: &str) -> bool {
        (self.components.is_empty() || self.components.iter().any(|c| c == component))
            && (self.environments.is_empty() || self.environments.iter().any(|e| e == environment))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.components.is_empty() && self.environments.is_empty() {
            return f.write_str("any");
        }
        let entries: Vec<String> = self
            .components
            .iter()
            .map(|c| format!("component={c}"))
            .chain(self.environments.iter().map(|e| format!("environment={e}")))
            .collect();
        f.write_str(&entries.join(" "))
    }
}

/// Who is calling, as the access check established it. Handlers find it in the
/// request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    fn anonymous() -> Self {
        Caller {
            name: "anonymous".into(),
            role: Role::Admin,
            scope: Scope::default(),
        }
    }

    fn bootstrap_admin() -> Self {
        Caller {
            name: "bootstrap-admin".into(),
            role: Role::Admin,
            scope: Scope::default(),
        }
    }

    fn from_row(row: TokenRow) -> Result<Self, ApiError> {
        let corrupt = |what: &str| {
            tracing::error!(token = %row.name, "unreadable stored token: {what}");
            ApiError::Internal(format!("the stored token {:?} is unreadable", row.name))
        };
        let role = Role::parse(&row.role).ok_or_else(|| corrupt("role"))?;
        let components: Vec<String> =
            serde_json::from_str(&row.scope_components).map_err(|_| corrupt("scope"))?;
        let environments: Vec<String> =
            serde_json::from_str(&row.scope_environments).map_err(|_| corrupt("scope"))?;
        Ok(Caller {
            name: row.name,
            role,
            scope: Scope {
                components,
                environments,
            },
        })
    }
}

/// A secret given to the server: neither `Debug` nor `Display` shows it, so it
/// cannot reach a log line by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Tokens start with this, so that secret scanners and people recognise them.
pub const TOKEN_PREFIX: &str = "dt_";

/// A new token: 256 bits from the operating system's generator.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a token: its SHA-256, in hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// How the server decides who may call; built once at start-up.
#[derive(Clone)]
pub struct AccessPolicy {
    /// While no token exists, anonymous calls are served (loopback bind, or
    /// `--allow-anonymous`).
    pub anonymous_when_no_tokens: bool,
    /// SHA-256 of `DEPLOYTIME_ADMIN_TOKEN`, kept in memory only.
    pub bootstrap_admin: Option<[u8; 32]>,
}

impl AccessPolicy {
    pub fn new(anonymous_when_no_tokens: bool, admin_token: Option<&Secret>) -> Self {
        AccessPolicy {
            anonymous_when_no_tokens,
            bootstrap_admin: admin_token.map(|t| Sha256::digest(t.expose().as_bytes()).into()),
        }
    }
}

const NEEDS_TOKEN: &str = "this call needs a token: send `Authorization: Bearer TOKEN`";
const INVALID_TOKEN: &str = "the token is not valid: unknown or revoked";

/// Why a call is refused by the access check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No valid credential: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential that does not allow this call: 403.
    #[error("{0}")]
    Forbidden(String),
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated(detail) => ApiError::Unauthorized(detail),
            Denied::Forbidden(detail) => ApiError::Forbidden(detail),
        }
    }
}

/// What a call presented, before it is checked against the stored tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No token, on a server that serves anonymous calls while no token exists.
    Anonymous,
    /// `DEPLOYTIME_ADMIN_TOKEN`, recognised in memory.
    BootstrapAdmin,
    /// A bearer token, by its SHA-256.
    Token([u8; 32]),
}

/// Reads the credential from the `Authorization` header. Only the bootstrap
/// admin token is recognised here; a bearer token is still to be checked.
fn present(headers: &HeaderMap, policy: &AccessPolicy) -> Result<Credential, Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return if policy.anonymous_when_no_tokens && policy.bootstrap_admin.is_none() {
            Ok(Credential::Anonymous)
        } else {
            Err(Denied::Unauthenticated(NEEDS_TOKEN.into()))
        };
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Denied::Unauthenticated("the Authorization header must be `Bearer TOKEN`".into())
        })?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(admin) = &policy.bootstrap_admin
        && bool::from(admin.ct_eq(&digest))
    {
        return Ok(Credential::BootstrapAdmin);
    }
    Ok(Credential::Token(digest))
}

/// Establishes who presented `credential`, asking the database.
async fn resolve(credential: &Credential, db: &Database) -> Result<Caller, ApiError> {
    match credential {
        Credential::BootstrapAdmin => Ok(Caller::bootstrap_admin()),
        Credential::Anonymous => {
            let any = db.read(tokens::any_token).await?.map_err(DbError::from)?;
            if any {
                Err(ApiError::Unauthorized(NEEDS_TOKEN.into()))
            } else {
                Ok(Caller::anonymous())
            }
        }
        Credential::Token(digest) => {
            let hash = hex::encode(digest);
            let lookup = hash.clone();
            let row = db
                .read(move |conn| tokens::find_token_by_hash(conn, &lookup))
                .await?
                .map_err(DbError::from)?;
            match row {
                Some(row) if bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) => {
                    Caller::from_row(row)
                }
                _ => Err(ApiError::Unauthorized(INVALID_TOKEN.into())),
            }
        }
    }
}

/// Refuses the call unless the caller's role allows `needed`.
pub fn check_role(caller: &Caller, needed: Role) -> Result<(), Denied> {
    if caller.role.grants(needed) {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "the token {:?} has the {} role; this call needs {}",
            caller.name, caller.role, needed
        )))
    }
}

/// Refuses an event outside the caller's scope.
pub fn check_scope(caller: &Caller, component: &str, environment: &str) -> Result<(), Denied> {
    if caller.scope.allows(component, environment) {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "the token {:?} may record events for {} only (got component {component}, environment {environment})",
            caller.name, caller.scope
        )))
    }
}

/// The stored tokens as they were when read, by the SHA-256 of each token.
#[derive(Debug)]
pub struct TokenSnapshot {
    fingerprint: TokensFingerprint,
    callers: HashMap<[u8; 32], Caller>,
}

impl TokenSnapshot {
    fn read(fingerprint: TokensFingerprint, rows: Vec<TokenRow>) -> Self {
        let callers = rows
            .into_iter()
            .filter_map(|row| {
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(&row.token_hash, &mut digest).is_err() {
                    tracing::error!(token = %row.name, "unreadable stored token: hash");
                    return None;
                }
                // An unreadable token is logged by from_row and admits no one.
                Caller::from_row(row).ok().map(|caller| (digest, caller))
            })
            .collect();
        TokenSnapshot {
            fingerprint,
            callers,
        }
    }

    /// Who presented `credential`, by these tokens.
    pub fn caller(&self, credential: &Credential) -> Result<Caller, Denied> {
        match credential {
            Credential::BootstrapAdmin => Ok(Caller::bootstrap_admin()),
            Credential::Anonymous if self.fingerprint.is_empty() => Ok(Caller::anonymous()),
            Credential::Anonymous => Err(Denied::Unauthenticated(NEEDS_TOKEN.into())),
            Credential::Token(digest) => self
                .callers
                .get(digest)
                .cloned()
                .ok_or_else(|| Denied::Unauthenticated(INVALID_TOKEN.into())),
        }
    }

    /// Whether `credential` may record an event for this component and
    /// environment.
    pub fn admit_event(
        &self,
        credential: &Credential,
        component: &str,
        environment: &str,
    ) -> Result<(), Denied> {
        let caller = self.caller(credential)?;
        check_role(&caller, Role::Ingest)?;
        check_scope(&caller, component, environment)
    }
}

/// The server's in-memory copy of the stored tokens, shared by the access
/// check of store calls and the group commit (see the module's documentation).
#[derive(Clone, Default)]
pub struct TokenCache(Arc<RwLock<Option<Arc<TokenSnapshot>>>>);

impl TokenCache {
    /// The copy last read, if any; it may be behind the database.
    pub fn current(&self) -> Option<Arc<TokenSnapshot>> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments; the value is intact.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The tokens as they are now: one small query, and a reload of the tokens
    /// only when one was created or revoked since the last reading.
    pub fn refresh(&self, conn: &mut DbConnection) -> diesel::QueryResult<Arc<TokenSnapshot>> {
        let fingerprint = tokens::fingerprint(conn)?;
        if let Some(current) = self.current()
            && current.fingerprint == fingerprint
        {
            return Ok(current);
        }
        // Read after the fingerprint: a change in between makes the next
        // refresh read again, never the other way round.
        let snapshot = Arc::new(TokenSnapshot::read(fingerprint, tokens::list_tokens(conn)?));
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot.clone());
        Ok(snapshot)
    }
}

/// Authenticates the call and checks that the caller's role allows `needed`;
/// the caller and its credential are left in the request's extensions for the
/// handler.
pub async fn authorize(req: &HttpRequest, needed: Role) -> Result<(), ApiError> {
    let missing = || ApiError::Internal("the access policy is not configured".into());
    let policy = req
        .app_data::<web::Data<AccessPolicy>>()
        .ok_or_else(missing)?;
    let db = req.app_data::<web::Data<Database>>().ok_or_else(missing)?;
    let credential = present(req.headers(), policy)?;
    // `ingest` allows store calls only, and the group commit checks every store
    // call again against the tokens of its own commit: the in-memory copy may
    // answer here. A refusal is never taken from the copy (a token may have
    // been created since it was read): it is asked of the database.
    let cached = (needed == Role::Ingest)
        .then(|| db.tokens().current())
        .flatten()
        .and_then(|snapshot| snapshot.caller(&credential).ok());
    let caller = match cached {
        Some(caller) => caller,
        None => resolve(&credential, db).await?,
    };
    check_role(&caller, needed)?;
    let mut extensions = req.extensions_mut();
    extensions.insert(caller);
    extensions.insert(credential);
    Ok(())
}

async fn guard<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
    needed: Role,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match authorize(req.request(), needed).await {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

/// Middleware of the read-only resources: `read` for every method (a method the
/// resource does not have is then answered 405).
pub async fn require_read<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    guard(req, next, Role::Read).await
}

/// Middleware of `/api/v1/events`: `ingest` to record, `read` to list.
pub async fn require_events_access<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let needed = if req.method() == Method::POST {
        Role::Ingest
    } else {
        Role::Read
    };
    guard(req, next, needed).await
}

/// Middleware of `/api/v1/deployments/{id}`: `admin` to delete, `read` to look.
pub async fn require_deployment_access<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let needed = if req.method() == Method::DELETE {
        Role::Admin
    } else {
        Role::Read
    };
    guard(req, next, needed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        // 32 bytes in unpadded base64url.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        let hash = hash_token(&a);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn admin_grants_everything_other_roles_only_themselves() {
        for needed in [Role::Ingest, Role::Read, Role::Admin] {
            assert!(Role::Admin.grants(needed));
        }
        assert!(Role::Ingest.grants(Role::Ingest));
        assert!(!Role::Ingest.grants(Role::Read));
        assert!(!Role::Read.grants(Role::Ingest));
        assert!(!Role::Read.grants(Role::Admin));
    }

    #[test]
    fn scopes_limit_components_and_environments() {
        let scope =
            Scope::parse(&["component=api", "component=web", "environment=staging"]).unwrap();
        assert!(scope.allows("api", "staging"));
        assert!(scope.allows("web", "staging"));
        assert!(!scope.allows("api", "production"));
        assert!(!scope.allows("db", "staging"));
        assert!(Scope::default().allows("anything", "anywhere"));
        assert!(Scope::parse(&["team=x"]).is_err());
        assert!(Scope::parse(&["component"]).is_err());
        assert!(Scope::parse(&["component=a b"]).is_err());
        assert_eq!(
            scope.to_string(),
            "component=api component=web environment=staging"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("hunter2-hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
