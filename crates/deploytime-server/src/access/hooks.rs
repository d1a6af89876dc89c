//! The secrets of the webhook endpoints, and the checks of a delivery against
//! them: GitHub signs the body (`X-Hub-Signature-256`, HMAC-SHA256), GitLab
//! sends the secret token itself (`X-Gitlab-Token`). Both are compared in
//! constant time, against every configured secret, so that a secret can be
//! rotated without a moment in which the provider's deliveries are refused.

use deploytime_core::access::{Denied, TokenDigest};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Secret;

/// The webhook secrets the server accepts, per provider. An empty list turns
/// the provider's endpoint off (it answers 404).
#[derive(Debug, Clone, Default)]
pub struct HookSecrets {
    github: Vec<Secret>,
    gitlab: Vec<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookSecretsError {
    #[error(
        "{flag} takes at most {max} secrets (the current one and the next, during a rotation); got {given}"
    )]
    TooMany {
        flag: &'static str,
        max: usize,
        given: usize,
    },
}

impl HookSecrets {
    /// Secrets per provider at most: enough for a rotation, few enough that
    /// each delivery costs a bounded number of HMACs.
    pub const MAX_PER_PROVIDER: usize = 3;

    /// The secrets as given on the command line; empty values are left out.
    pub fn new(github: Vec<String>, gitlab: Vec<String>) -> Result<Self, HookSecretsError> {
        let keep = |flag: &'static str, given: Vec<String>| {
            let secrets: Vec<Secret> = given
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect();
            if secrets.len() > Self::MAX_PER_PROVIDER {
                return Err(HookSecretsError::TooMany {
                    flag,
                    max: Self::MAX_PER_PROVIDER,
                    given: secrets.len(),
                });
            }
            Ok(secrets)
        };
        Ok(HookSecrets {
            github: keep("--github-webhook-secret", github)?,
            gitlab: keep("--gitlab-webhook-token", gitlab)?,
        })
    }

    pub fn github_enabled(&self) -> bool {
        !self.github.is_empty()
    }

    pub fn gitlab_enabled(&self) -> bool {
        !self.gitlab.is_empty()
    }

    /// Admits a GitHub delivery whose `X-Hub-Signature-256` (`sha256=` and the
    /// hexadecimal HMAC-SHA256 of the body) was made with one of the secrets.
    pub fn verify_github(&self, signature: Option<&[u8]>, body: &[u8]) -> Result<(), Denied> {
        let signature = signature.ok_or_else(|| {
            Denied::Unauthenticated("the X-Hub-Signature-256 header is missing".into())
        })?;
        let digest = signature
            .strip_prefix(b"sha256=")
            .and_then(|hex_digest| hex::decode(hex_digest).ok())
            .filter(|d| d.len() == 32)
            .ok_or_else(|| {
                Denied::Unauthenticated(
                    "the X-Hub-Signature-256 header must be sha256= and 64 hexadecimal digits"
                        .into(),
                )
            })?;
        let mut matched = false;
        for secret in &self.github {
            // HMAC takes keys of any length; the error cannot happen.
            if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
                mac.update(body);
                matched |= mac.verify_slice(&digest).is_ok();
            }
        }
        if matched {
            Ok(())
        } else {
            Err(Denied::Unauthenticated(
                "the X-Hub-Signature-256 signature does not match the body with any configured secret"
                    .into(),
            ))
        }
    }

    /// Admits a GitLab delivery whose `X-Gitlab-Token` is one of the secrets.
    /// Digests of equal length are compared, so the time taken says nothing
    /// of a secret's length or content.
    pub fn verify_gitlab(&self, token: Option<&[u8]>) -> Result<(), Denied> {
        let token = token.ok_or_else(|| {
            Denied::Unauthenticated("the X-Gitlab-Token header is missing".into())
        })?;
        let given = TokenDigest::of(&String::from_utf8_lossy(token));
        let mut matched = false;
        for secret in &self.gitlab {
            let expected = TokenDigest::of(secret.expose());
            matched |= bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
        }
        if matched {
            Ok(())
        } else {
            Err(Denied::Unauthenticated(
                "the X-Gitlab-Token does not match any configured secret token".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_signatures_are_checked_against_every_secret() {
        let secrets = HookSecrets::new(vec!["old".into(), "new".into()], vec![]).unwrap();
        let body = b"{\"zen\":\"x\"}";
        for secret in ["old", "new"] {
            let signature = sign(secret, body);
            assert!(
                secrets
                    .verify_github(Some(signature.as_bytes()), body)
                    .is_ok()
            );
        }
        let wrong = sign("other", body);
        assert!(secrets.verify_github(Some(wrong.as_bytes()), body).is_err());
        let tampered = sign("new", body);
        assert!(
            secrets
                .verify_github(Some(tampered.as_bytes()), b"{}")
                .is_err()
        );
        assert!(secrets.verify_github(None, body).is_err());
        assert!(secrets.verify_github(Some(b"sha1=abc"), body).is_err());
        assert!(secrets.verify_github(Some(b"sha256=zz"), body).is_err());
    }

    #[test]
    fn gitlab_tokens_are_compared_with_every_secret() {
        let secrets = HookSecrets::new(vec![], vec!["t1".into(), " t2 ".into()]).unwrap();
        assert!(secrets.verify_gitlab(Some(b"t1")).is_ok());
        assert!(secrets.verify_gitlab(Some(b"t2")).is_ok());
        assert!(secrets.verify_gitlab(Some(b"t3")).is_err());
        assert!(secrets.verify_gitlab(None).is_err());
    }

    #[test]
    fn empty_values_turn_nothing_on_and_too_many_are_refused() {
        let secrets = HookSecrets::new(vec![String::new()], vec![]).unwrap();
        assert!(!secrets.github_enabled());
        assert!(!secrets.gitlab_enabled());
        let many = vec!["a".to_owned(); HookSecrets::MAX_PER_PROVIDER + 1];
        assert!(HookSecrets::new(many, vec![]).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let secrets = HookSecrets::new(vec!["hunter2".into()], vec!["hunter3".into()]).unwrap();
        assert!(!format!("{secrets:?}").contains("hunter"));
    }
}
