//! Who may call what. A caller is identified by its TLS client certificate: the certificate's `bcl://` URI
//! subject alternative names are its grants, its subject CN names it in logs and in the log leaves of the
//! admin changes it makes.
//!
//! | URI SAN                                  | role                 | may call                                         |
//! |------------------------------------------|----------------------|--------------------------------------------------|
//! | `bcl://centre/<east\|west>[/<vendor>]`   | `centre`             | `Issuance`, only with its own `centre`           |
//! | `bcl://link/<code>` (one per code)       | `link`               | `Ingest` for those municipalities                |
//! | `bcl://link` (codes from `--link-grant`) | `link`               | `Ingest` for the codes the server config grants  |
//! | `bcl://municipality-admin/<code>`        | `municipality-admin` | `Admin` for that municipality only               |
//! | `bcl://auditor`                          | `auditor`            | `Audit` and `Verify` (both read-only)            |
//! | `bcl://peer/<east\|west>`                | `peer`               | `Ingest`, `Issuance`, `Admin`, `Audit`, `Replication` |
//! | `bcl://monitor`                          | `monitor`            | health and the metrics endpoint only             |
//!
//! Health checks and reflection are open to every authenticated caller. The check by service is the table
//! [`ACL`] (adding a service is one line); the check by municipality or centre needs the decoded request and
//! is done by the handlers through [`Caller::may_act_for`] and [`Caller::may_issue_as`].

use std::collections::HashMap;
use std::fmt;

/// One thing a certificate grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Centre(String),
    Link(String),
    /// `bcl://link` without a code: the server's `--link-grant` configuration lists the municipalities.
    LinkByConfig,
    MunicipalityAdmin(String),
    Auditor,
    Peer(String),
    Monitor,
    /// `--insecure-dev` only: there is no certificate, so every caller may do everything.
    InsecureDev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Centre,
    Link,
    MunicipalityAdmin,
    Auditor,
    Peer,
    Monitor,
}

impl Grant {
    fn role(&self) -> Option<Role> {
        Some(match self {
            Grant::Centre(_) => Role::Centre,
            Grant::Link(_) | Grant::LinkByConfig => Role::Link,
            Grant::MunicipalityAdmin(_) => Role::MunicipalityAdmin,
            Grant::Auditor => Role::Auditor,
            Grant::Peer(_) => Role::Peer,
            Grant::Monitor => Role::Monitor,
            Grant::InsecureDev => return None,
        })
    }

    /// Parses one `bcl://role[/arg[/extra]]` URI; anything else is not a grant (and is ignored).
    pub fn parse(uri: &str) -> Option<Grant> {
        let rest = uri.strip_prefix("bcl://")?;
        let mut parts = rest.split('/');
        let role = parts.next()?;
        let arg = parts.next().unwrap_or("");
        let code = || bcl_projections::validate::check_municipality_code(arg).is_ok().then(|| arg.to_string());
        let site = || matches!(arg, "east" | "west").then(|| arg.to_string());
        match role {
            "centre" => site().map(Grant::Centre),
            "link" if arg.is_empty() => Some(Grant::LinkByConfig),
            "link" => code().map(Grant::Link),
            "municipality-admin" => code().map(Grant::MunicipalityAdmin),
            "auditor" => Some(Grant::Auditor),
            "peer" => site().map(Grant::Peer),
            "monitor" => Some(Grant::Monitor),
            _ => None,
        }
    }

    pub fn uri(&self) -> String {
        match self {
            Grant::Centre(c) => format!("bcl://centre/{c}"),
            Grant::Link(code) => format!("bcl://link/{code}"),
            Grant::LinkByConfig => "bcl://link".into(),
            Grant::MunicipalityAdmin(code) => format!("bcl://municipality-admin/{code}"),
            Grant::Auditor => "bcl://auditor".into(),
            Grant::Peer(c) => format!("bcl://peer/{c}"),
            Grant::Monitor => "bcl://monitor".into(),
            Grant::InsecureDev => "insecure-dev".into(),
        }
    }
}

/// Which roles may call which gRPC service, by path prefix. The first matching prefix decides; a path that
/// matches no entry is denied.
pub const ACL: &[(&str, &[Role])] = &[
    ("/bcl.v1.Ingest/", &[Role::Link, Role::Peer]),
    ("/bcl.v1.Issuance/", &[Role::Centre, Role::Peer]),
    ("/bcl.v1.Admin/", &[Role::MunicipalityAdmin, Role::Peer]),
    ("/bcl.v1.Audit/", &[Role::Auditor, Role::Peer]),
    ("/bcl.v1.Verify/", &[Role::Auditor]),
    ("/bcl.v1.Replication/", &[Role::Peer]),
    ("/grpc.health.v1.Health/", ALL_ROLES),
    ("/grpc.reflection.v1.ServerReflection/", ALL_ROLES),
    ("/grpc.reflection.v1alpha.ServerReflection/", ALL_ROLES),
];

const ALL_ROLES: &[Role] =
    &[Role::Centre, Role::Link, Role::MunicipalityAdmin, Role::Auditor, Role::Peer, Role::Monitor];

/// The authenticated caller of one request; the auth layer puts it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The certificate's subject CN (e.g. `link-131016`): names the caller in logs and admin leaves.
    pub name: String,
    pub grants: Vec<Grant>,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uris: Vec<String> = self.grants.iter().map(Grant::uri).collect();
        write!(f, "{} ({})", self.name, uris.join(" "))
    }
}

impl Caller {
    pub fn insecure_dev() -> Caller {
        Caller { name: "insecure-dev".into(), grants: vec![Grant::InsecureDev] }
    }

    /// Reads a client certificate (DER). `link_grants` adds municipalities by CN for `bcl://link` certificates.
    pub fn from_certificate(der: &[u8], link_grants: &HashMap<String, Vec<String>>) -> Option<Caller> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or("").to_string();
        let mut grants = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for general in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = general {
                    if let Some(grant) = Grant::parse(uri) {
                        grants.push(grant);
                    }
                }
            }
        }
        if grants.contains(&Grant::LinkByConfig) {
            for code in link_grants.get(&name).into_iter().flatten() {
                grants.push(Grant::Link(code.clone()));
            }
        }
        let name = if name.is_empty() { format!("serial:{}", cert.raw_serial_as_string()) } else { name };
        Some(Caller { name, grants })
    }

    fn has_role(&self, allowed: &[Role]) -> bool {
        self.grants.iter().any(|g| *g == Grant::InsecureDev || g.role().is_some_and(|r| allowed.contains(&r)))
    }

    /// May this caller call the gRPC method at `path` (e.g. `/bcl.v1.Issuance/Issue`)?
    pub fn may_call(&self, path: &str) -> bool {
        match ACL.iter().find(|(prefix, _)| path.starts_with(prefix)) {
            Some((_, roles)) => self.has_role(roles),
            None => false,
        }
    }

    /// May this caller, acting in `role`, read or change data of municipality `code`? A link acts for its
    /// listed municipalities (Ingest), an admin for its own (Admin); a peer for all of them. Grants of another
    /// role on the same certificate do not count, so a link certificate never administers.
    pub fn may_act_for(&self, role: Role, code: &str) -> bool {
        self.grants.iter().any(|g| match (g, role) {
            (Grant::Link(c), Role::Link) | (Grant::MunicipalityAdmin(c), Role::MunicipalityAdmin) => c == code,
            (Grant::Peer(_) | Grant::InsecureDev, _) => true,
            _ => false,
        })
    }

    /// May this caller issue on behalf of exchange centre `centre` (`east`/`west`)?
    pub fn may_issue_as(&self, centre: &str) -> bool {
        self.grants.iter().any(|g| match g {
            Grant::Centre(c) => c == centre,
            Grant::Peer(_) | Grant::InsecureDev => true,
            _ => false,
        })
    }

    /// What an admin leaf records as the actor: the CN and the grants, never anything about a resident.
    pub fn actor(&self) -> String {
        self.to_string()
    }

    /// The rate limiter's key: callers sharing a certificate identity share a bucket.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uris: &[&str]) -> Caller {
        Caller { name: "t".into(), grants: uris.iter().filter_map(|u| Grant::parse(u)).collect() }
    }

    #[test]
    fn grants_parse_and_reject_garbage() {
        assert_eq!(Grant::parse("bcl://centre/east"), Some(Grant::Centre("east".into())));
        assert_eq!(Grant::parse("bcl://centre/east/vendor-a"), Some(Grant::Centre("east".into())));
        assert_eq!(Grant::parse("bcl://centre/north"), None);
        assert_eq!(Grant::parse("bcl://link/131016"), Some(Grant::Link("131016".into())));
        assert_eq!(Grant::parse("bcl://link/131017"), None, "bad check digit");
        assert_eq!(Grant::parse("bcl://link"), Some(Grant::LinkByConfig));
        assert_eq!(Grant::parse("https://link/131016"), None);
        assert_eq!(Grant::parse("bcl://root"), None);
    }

    #[test]
    fn the_table_decides_by_service() {
        let centre = caller(&["bcl://centre/east"]);
        assert!(centre.may_call("/bcl.v1.Issuance/Issue"));
        assert!(!centre.may_call("/bcl.v1.Ingest/Append"));
        assert!(!centre.may_call("/bcl.v1.Admin/UpdateSettings"));
        assert!(centre.may_call("/grpc.health.v1.Health/Check"));
        assert!(!centre.may_call("/bcl.v1.Unknown/X"));
        let peer = caller(&["bcl://peer/west"]);
        for p in
            ["/bcl.v1.Ingest/Append", "/bcl.v1.Issuance/Issue", "/bcl.v1.Admin/GetSettings", "/bcl.v1.Audit/ReadLog"]
        {
            assert!(peer.may_call(p), "{p}");
        }
        assert!(peer.may_call("/bcl.v1.Replication/Anything"));
        assert!(!peer.may_call("/bcl.v1.Verify/VerifyBack"));
        let nobody = caller(&[]);
        assert!(!nobody.may_call("/grpc.health.v1.Health/Check"));
    }

    #[test]
    fn scope_by_municipality_and_centre() {
        let link = caller(&["bcl://link/131016"]);
        assert!(link.may_act_for(Role::Link, "131016"));
        assert!(!link.may_act_for(Role::Link, "132012"));
        assert!(!link.may_act_for(Role::MunicipalityAdmin, "131016"));
        let east = caller(&["bcl://centre/east"]);
        assert!(east.may_issue_as("east"));
        assert!(!east.may_issue_as("west"));
        assert!(!east.may_act_for(Role::Link, "131016"));
    }
}
