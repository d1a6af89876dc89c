//! Who approves a release: read from what an approver source answered, or
//! from a static file per team project. Every address is validated; a list
//! that is empty or unreadable is refused with the reason, never guessed at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most approvers one release asks (each gets a mail).
pub const MAX_APPROVERS: usize = 100;

/// One approver: a validated address (kept as given, compared without case)
/// and an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Approver {
    /// Whether `who` (an address or a name, as `requested_by` gives it) is
    /// this approver.
    pub fn is(&self, who: &str) -> bool {
        let who = who.trim();
        self.email.eq_ignore_ascii_case(who)
            || self
                .name
                .as_deref()
                .is_some_and(|name| name.trim().eq_ignore_ascii_case(who))
    }
}

/// Why an approver list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApproverListError {
    #[error("the approver list is not readable: {0}")]
    Unreadable(String),
    #[error("the approver list is empty")]
    Empty,
    #[error("the approver list has invalid addresses: {}", .0.join(", "))]
    InvalidAddresses(Vec<String>),
    #[error("the approver list has {0} approvers; at most {MAX_APPROVERS} are asked")]
    TooMany(usize),
}

/// One entry: an address, or `{"email": …, "name": …}`.
fn entry(value: &Value) -> Result<Approver, String> {
    let (email, name) = match value {
        Value::String(email) => (email.as_str(), None),
        Value::Object(object) => {
            let email = object
                .get("email")
                .and_then(Value::as_str)
                .ok_or_else(|| "an entry without an \"email\" string".to_owned())?;
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
                .map(|n| n.chars().take(128).collect::<String>());
            (email, name)
        }
        other => {
            return Err(format!(
                "an entry that is neither an address nor an object: {other}"
            ));
        }
    };
    let email = email.trim();
    if email.len() > 254
        || email.chars().any(char::is_control)
        || !email_address::EmailAddress::is_valid(email)
    {
        let shown: String = email.chars().filter(|c| !c.is_control()).take(80).collect();
        return Err(format!("{shown:?}"));
    }
    Ok(Approver {
        email: email.to_owned(),
        name,
    })
}

/// Reads a list of entries, each validated; duplicates (same address) once.
fn list(entries: &[Value]) -> Result<Vec<Approver>, ApproverListError> {
    if entries.is_empty() {
        return Err(ApproverListError::Empty);
    }
    let mut approvers: Vec<Approver> = Vec::new();
    let mut invalid = Vec::new();
    for value in entries {
        match entry(value) {
            Ok(approver) => {
                if !approvers
                    .iter()
                    .any(|a| a.email.eq_ignore_ascii_case(&approver.email))
                {
                    approvers.push(approver);
                }
            }
            Err(e) if e.starts_with('"') => invalid.push(e),
            Err(e) => return Err(ApproverListError::Unreadable(e)),
        }
    }
    if !invalid.is_empty() {
        return Err(ApproverListError::InvalidAddresses(invalid));
    }
    if approvers.len() > MAX_APPROVERS {
        return Err(ApproverListError::TooMany(approvers.len()));
    }
    Ok(approvers)
}

/// Reads an approver source's answer: `{"approvers": [...]}` or a bare list,
/// whose entries are addresses or `{"email", "name"}` objects.
pub fn parse_source(body: &[u8]) -> Result<Vec<Approver>, ApproverListError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApproverListError::Unreadable(format!("not JSON ({e})")))?;
    match &value {
        Value::Array(entries) => list(entries),
        Value::Object(object) => match object.get("approvers") {
            Some(Value::Array(entries)) => list(entries),
            Some(_) => Err(ApproverListError::Unreadable(
                "\"approvers\" is not a list".into(),
            )),
            None => Err(ApproverListError::Unreadable(
                "neither a list nor an object with \"approvers\"".into(),
            )),
        },
        _ => Err(ApproverListError::Unreadable(
            "neither a list nor an object with \"approvers\"".into(),
        )),
    }
}

/// Approvers per team project, from a static file: a JSON object whose keys
/// are team projects (`"*"` for every other one) and whose values are lists as
/// an approver source answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticApprovers(BTreeMap<String, Vec<Approver>>);

impl StaticApprovers {
    /// Reads and validates the whole file; a mistake anywhere is an error (it
    /// is read at start-up, where refusing to start is the right answer).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
        let Value::Object(projects) = value else {
            return Err("must be an object of team project → approvers".into());
        };
        let mut out = BTreeMap::new();
        for (project, entries) in projects {
            let approvers = match &entries {
                Value::Array(entries) => list(entries),
                Value::Object(_) => parse_source(entries.to_string().as_bytes()),
                _ => Err(ApproverListError::Unreadable("not a list".into())),
            }
            .map_err(|e| format!("{project:?}: {e}"))?;
            out.insert(project, approvers);
        }
        Ok(StaticApprovers(out))
    }

    /// The approvers of a team project (or of `"*"`), if the file names any.
    pub fn of(&self, team_project: &str) -> Option<&[Approver]> {
        self.0
            .get(team_project)
            .or_else(|| self.0.get("*"))
            .map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_read() {
        let plain =
            parse_source(br#"{"approvers": ["ana@example.com", "Bo@Example.com"]}"#).unwrap();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[1].email, "Bo@Example.com");
        let objects = parse_source(
            br#"[{"email": "ana@example.com", "name": "Ana"}, {"email": "ANA@example.com"}]"#,
        )
        .unwrap();
        assert_eq!(
            objects,
            vec![Approver {
                email: "ana@example.com".into(),
                name: Some("Ana".into())
            }],
            "the same address twice is asked once"
        );
        assert!(objects[0].is("Ana"));
        assert!(objects[0].is("ANA@EXAMPLE.COM"));
        assert!(!objects[0].is("bo@example.com"));
    }

    #[test]
    fn unusable_lists_are_refused_with_the_reason() {
        assert_eq!(
            parse_source(br#"{"approvers": []}"#),
            Err(ApproverListError::Empty)
        );
        assert_eq!(parse_source(b"[]"), Err(ApproverListError::Empty));
        assert!(matches!(
            parse_source(b"<html>oops</html>"),
            Err(ApproverListError::Unreadable(_))
        ));
        assert!(matches!(
            parse_source(br#"{"people": ["a@b.c"]}"#),
            Err(ApproverListError::Unreadable(_))
        ));
        assert!(matches!(
            parse_source(br#"[42]"#),
            Err(ApproverListError::Unreadable(_))
        ));
        assert_eq!(
            parse_source(br#"["ana@example.com", "not an address", "x@"]"#),
            Err(ApproverListError::InvalidAddresses(vec![
                "\"not an address\"".into(),
                "\"x@\"".into()
            ]))
        );
        let many: Vec<String> = (0..=MAX_APPROVERS)
            .map(|i| format!("\"a{i}@example.com\""))
            .collect();
        assert_eq!(
            parse_source(format!("[{}]", many.join(",")).as_bytes()),
            Err(ApproverListError::TooMany(MAX_APPROVERS + 1))
        );
    }

    #[test]
    fn a_static_file_names_approvers_per_project() {
        let file = StaticApprovers::parse(
            br#"{"Devx": ["ana@example.com"], "*": {"approvers": [{"email": "ops@example.com"}]}}"#,
        )
        .unwrap();
        assert_eq!(file.of("Devx").unwrap()[0].email, "ana@example.com");
        assert_eq!(file.of("Other").unwrap()[0].email, "ops@example.com");
        assert!(
            StaticApprovers::parse(br#"{"Devx": []}"#)
                .unwrap_err()
                .contains("Devx")
        );
        assert!(StaticApprovers::parse(b"[]").is_err());
        assert_eq!(StaticApprovers::parse(b"{}").unwrap().of("Devx"), None);
    }
}
