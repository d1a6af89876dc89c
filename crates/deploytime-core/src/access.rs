//! Who may do what: roles, scopes, the caller a credential stands for, and
//! whether that caller may record an event. Pure rules: the server reads the
//! stored tokens and asks these (docs/architecture.md, "Who may store an event?").

use std::fmt;

use sha2::{Digest, Sha256};

use crate::event::NewEvent;
use crate::names::{Component, Environment};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Record events (`POST /api/v1/events`) and nothing else.
    Ingest,
    /// Read: every `GET` endpoint.
    Read,
    /// Everything, deletions included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Read, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
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
    pub components: Vec<Component>,
    pub environments: Vec<Environment>,
    /// The release gate's team projects.
    pub team_projects: Vec<String>,
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
                    "scope {entry:?}: write component=NAME, environment=NAME or team_project=NAME"
                ));
            };
            match kind.trim() {
                "component" => scope.components.push(
                    Component::parse(name.trim())
                        .map_err(|e| format!("scope {entry:?}: the component {e}"))?,
                ),
                "environment" => scope.environments.push(
                    Environment::parse(name.trim())
                        .map_err(|e| format!("scope {entry:?}: the environment {e}"))?,
                ),
                "team_project" if !name.trim().is_empty() => {
                    scope.team_projects.push(name.trim().to_owned())
                }
                other => {
                    return Err(format!(
                        "scope {entry:?}: {other:?} is not component, environment or team_project"
                    ));
                }
            }
        }
        Ok(scope)
    }

    pub fn allows(&self, component: &Component, environment: &Environment) -> bool {
        (self.components.is_empty() || self.components.contains(component))
            && (self.environments.is_empty() || self.environments.contains(environment))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.components.is_empty()
            && self.environments.is_empty()
            && self.team_projects.is_empty()
        {
            return f.write_str("any");
        }
        let entries: Vec<String> = self
            .components
            .iter()
            .map(|c| format!("component={c}"))
            .chain(self.environments.iter().map(|e| format!("environment={e}")))
            .chain(
                self.team_projects
                    .iter()
                    .map(|p| format!("team_project={p}")),
            )
            .collect();
        f.write_str(&entries.join(" "))
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    /// An anonymous call on a server without tokens.
    pub fn anonymous() -> Self {
        Caller {
            name: "anonymous".into(),
            role: Role::Admin,
            scope: Scope::default(),
        }
    }

    /// A verified webhook delivery of `provider`: it records events of any
    /// component (the provider's configuration decides which), and reads
    /// nothing.
    pub fn webhook(provider: &str) -> Self {
        Caller {
            name: format!("{provider}-webhook"),
            role: Role::Ingest,
            scope: Scope::default(),
        }
    }

    /// The holder of the server's configured admin token.
    pub fn bootstrap_admin() -> Self {
        Caller {
            name: "bootstrap-admin".into(),
            role: Role::Admin,
            scope: Scope::default(),
        }
    }
}

/// The SHA-256 of a token: the only form in which a token is stored or compared.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// Reads the stored, hexadecimal form.
    pub fn from_hex(hex_digest: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut bytes).ok()?;
        Some(TokenDigest(bytes))
    }

    /// The stored, hexadecimal form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Never shows the digest: even a hash of a token does not belong in a log.
impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(***)")
    }
}

/// What a call presented, before it is checked against the stored tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No token, on a server that serves anonymous calls while no token exists.
    Anonymous,
    /// The server's configured admin token.
    BootstrapAdmin,
    /// A bearer token, by its digest.
    Token(TokenDigest),
    /// A provider's webhook delivery whose signature or secret the server
    /// verified (`github`, `gitlab`): it may record events, nothing else.
    Webhook(&'static str),
}

/// The stored tokens, as far as identifying a caller needs them.
pub trait TokenLookup {
    /// Whether no token is stored at all.
    fn is_empty(&self) -> bool;
    /// The caller holding the token with this digest, if one is stored.
    fn find(&self, digest: &TokenDigest) -> Option<Caller>;
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No valid credential: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential that does not allow this call: 403.
    #[error("{0}")]
    Forbidden(String),
}

impl Denied {
    pub fn needs_token() -> Self {
        Denied::Unauthenticated(
            "this call needs a token: send `Authorization: Bearer TOKEN`".into(),
        )
    }

    fn invalid_token() -> Self {
        Denied::Unauthenticated("the token is not valid: unknown or revoked".into())
    }
}

/// Who presented `credential`, by the stored tokens: an anonymous call is
/// admitted only while no token exists; a token only while it is stored.
pub fn identify(credential: &Credential, tokens: &impl TokenLookup) -> Result<Caller, Denied> {
    match credential {
        Credential::BootstrapAdmin => Ok(Caller::bootstrap_admin()),
        Credential::Anonymous if tokens.is_empty() => Ok(Caller::anonymous()),
        Credential::Anonymous => Err(Denied::needs_token()),
        Credential::Token(digest) => tokens.find(digest).ok_or_else(Denied::invalid_token),
        Credential::Webhook(provider) => Ok(Caller::webhook(provider)),
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
pub fn check_scope(
    caller: &Caller,
    component: &Component,
    environment: &Environment,
) -> Result<(), Denied> {
    if caller.scope.allows(component, environment) {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "the token {:?} may record events for {} only (got component {component}, environment {environment})",
            caller.name, caller.scope
        )))
    }
}

/// Refuses a release outside the caller's scope: a token scoped to team
/// projects, components or environments may only register (and read)
/// releases that name one of each it is scoped to.
pub fn check_release_scope(
    caller: &Caller,
    team_project: &str,
    component: Option<&Component>,
    environment: Option<&Environment>,
) -> Result<(), Denied> {
    let scope = &caller.scope;
    let within = (scope.team_projects.is_empty()
        || scope.team_projects.iter().any(|p| p == team_project))
        && (scope.components.is_empty() || component.is_some_and(|c| scope.components.contains(c)))
        && (scope.environments.is_empty()
            || environment.is_some_and(|e| scope.environments.contains(e)));
    if within {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "the token {:?} may use releases of {} only (got team project {team_project:?})",
            caller.name, caller.scope
        )))
    }
}

/// Whether `caller` may record `event`: the `ingest` role (or `admin`), and the
/// event's component and environment within its scope.
pub fn admit_event(caller: &Caller, event: &NewEvent) -> Result<(), Denied> {
    check_role(caller, Role::Ingest)?;
    check_scope(caller, &event.component, &event.environment)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Stored(Vec<(TokenDigest, Caller)>);

    impl TokenLookup for Stored {
        fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
        fn find(&self, digest: &TokenDigest) -> Option<Caller> {
            self.0
                .iter()
                .find(|(d, _)| d == digest)
                .map(|(_, c)| c.clone())
        }
    }

    fn names(component: &str, environment: &str) -> (Component, Environment) {
        (
            Component::parse(component).unwrap(),
            Environment::parse(environment).unwrap(),
        )
    }

    #[test]
    fn admin_grants_everything_other_roles_only_themselves() {
        for needed in Role::ALL {
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
        let (api, staging) = names("api", "staging");
        let (web, production) = names("web", "production");
        let (db, _) = names("db", "staging");
        assert!(scope.allows(&api, &staging));
        assert!(scope.allows(&web, &staging));
        assert!(!scope.allows(&api, &production));
        assert!(!scope.allows(&db, &staging));
        assert!(Scope::default().allows(&db, &production));
        assert!(Scope::parse(&["team=x"]).is_err());
        assert!(Scope::parse(&["component"]).is_err());
        assert!(Scope::parse(&["component=a b"]).is_err());
        assert_eq!(
            scope.to_string(),
            "component=api component=web environment=staging"
        );
    }

    #[test]
    fn anonymous_calls_are_served_only_while_no_token_exists() {
        let ci = TokenDigest::of("dt_ci");
        let ingest = Caller {
            name: "ci".into(),
            role: Role::Ingest,
            scope: Scope::default(),
        };
        let none = Stored(vec![]);
        let one = Stored(vec![(ci, ingest.clone())]);
        assert_eq!(
            identify(&Credential::Anonymous, &none),
            Ok(Caller::anonymous())
        );
        assert_eq!(
            identify(&Credential::Anonymous, &one),
            Err(Denied::needs_token())
        );
        assert_eq!(identify(&Credential::Token(ci), &one), Ok(ingest));
        assert!(matches!(
            identify(&Credential::Token(TokenDigest::of("dt_other")), &one),
            Err(Denied::Unauthenticated(_))
        ));
        assert_eq!(
            identify(&Credential::BootstrapAdmin, &one),
            Ok(Caller::bootstrap_admin())
        );
    }

    #[test]
    fn digests_read_back_from_hex_and_never_print() {
        let digest = TokenDigest::of("dt_secret");
        assert_eq!(digest.to_hex().len(), 64);
        assert_eq!(TokenDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(TokenDigest::from_hex("zz"), None);
        assert!(!format!("{digest:?}").contains(&digest.to_hex()[..8]));
    }
}
