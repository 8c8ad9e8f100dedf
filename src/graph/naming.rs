//! How virtual nodes — peers that send no spans — get their names.
//!
//! Tracing backends disagree here: Grafana Tempo names a database from
//! `peer.service`, `server.address`, `network.peer.address[:port]` and only
//! then the `db.*` attributes, while the OpenTelemetry Collector's
//! servicegraph connector uses `db.name`. faultline defaults to Tempo's order
//! (it matches the conformance fixtures) and lets the pipeline pick the other.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::partial::NodeKind;
use crate::model::Attributes;

/// The naming rule, set by `processors.graph.naming` in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamingRule {
    /// Grafana Tempo's order (the default).
    #[default]
    Tempo,
    /// The OpenTelemetry Collector servicegraph connector's defaults.
    Collector,
}

/// A virtual node as a caller's attributes name it, borrowed from the span:
/// nothing is allocated unless the name has to be built (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRef<'a> {
    pub name: Cow<'a, str>,
    pub kind: NodeKind,
    /// `db.system`, `db.system.name` or `messaging.system`.
    pub system: Option<&'a str>,
}

/// A virtual node as stored while a pair waits: interned names, so holding
/// one per pending span costs two reference counts, not two strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNode {
    pub name: Arc<str>,
    pub kind: NodeKind,
    pub system: Option<Arc<str>>,
}

/// The database node a CLIENT span calls, if it is a database call at all.
pub fn database_node(a: &Attributes, rule: NamingRule) -> Option<PeerRef<'_>> {
    if !a.is_database() {
        return None;
    }
    let name = match rule {
        NamingRule::Tempo => address(a).or_else(|| {
            first_of(&[
                a.db_namespace(),
                a.db_name(),
                a.db_system(),
                a.db_system_name(),
            ])
            .map(Cow::Borrowed)
        }),
        NamingRule::Collector => first_of(&[a.db_name(), a.db_namespace()])
            .or_else(|| first_of(&[a.db_system(), a.db_system_name()]))
            .map(Cow::Borrowed),
    }?;
    Some(PeerRef {
        name,
        kind: NodeKind::Database,
        system: first_of(&[a.db_system(), a.db_system_name()]),
    })
}

/// The peer a caller (CLIENT/PRODUCER span) or callee of an unknown caller
/// (root SERVER/CONSUMER span) names, used when the other side never shows up.
pub fn peer_node(a: &Attributes, rule: NamingRule) -> Option<PeerRef<'_>> {
    if let Some(db) = database_node(a, rule) {
        return Some(db);
    }
    let named = match rule {
        NamingRule::Tempo => address(a),
        NamingRule::Collector => first_of(&[a.peer_service()]).map(Cow::Borrowed),
    };
    if let Some(name) = named {
        return Some(PeerRef {
            name,
            kind: NodeKind::External,
            system: None,
        });
    }
    Some(PeerRef {
        name: Cow::Borrowed(first_of(&[a.messaging_destination()])?),
        kind: NodeKind::Messaging,
        system: first_of(&[a.messaging_system()]),
    })
}

/// `peer.service`, then `server.address`, then `network.peer.address[:port]`.
fn address(a: &Attributes) -> Option<Cow<'_, str>> {
    if let Some(name) = first_of(&[a.peer_service(), a.server_address()]) {
        return Some(Cow::Borrowed(name));
    }
    let host = first_of(&[a.network_peer_address()])?;
    Some(match first_of(&[a.network_peer_port()]) {
        Some(port) => Cow::Owned(format!("{host}:{port}")),
        None => Cow::Borrowed(host),
    })
}

fn first_of<'a>(candidates: &[Option<&'a str>]) -> Option<&'a str> {
    candidates.iter().find_map(|c| c.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        let mut a = Attributes::default();
        for (k, v) in pairs {
            a.set(k, crate::model::attributes::Value::Str(v));
        }
        a
    }

    #[test]
    fn tempo_order_for_databases() {
        let rule = NamingRule::Tempo;
        let name = |p: &[(&str, &str)]| database_node(&attrs(p), rule).map(|n| n.name.into_owned());
        assert_eq!(
            name(&[("db.name", "a"), ("server.address", "db1")]),
            Some("db1".into())
        );
        assert_eq!(
            name(&[("db.name", "a"), ("db.namespace", "b")]),
            Some("b".into())
        );
        assert_eq!(
            name(&[("db.system", "mssql"), ("db.system.name", "x")]),
            Some("mssql".into())
        );
        assert_eq!(
            name(&[
                ("db.system", "pg"),
                ("network.peer.address", "h"),
                ("network.peer.port", "5432")
            ]),
            Some("h:5432".into())
        );
        assert_eq!(name(&[("server.address", "h")]), None);
    }

    #[test]
    fn collector_rule_prefers_db_name() {
        let a = attrs(&[
            ("db.name", "orders"),
            ("server.address", "db1"),
            ("db.system", "pg"),
        ]);
        let n = database_node(&a, NamingRule::Collector).unwrap();
        assert_eq!(n.name, "orders");
        assert_eq!(n.system, Some("pg"));
    }

    #[test]
    fn peers_and_queues() {
        let rule = NamingRule::Tempo;
        let geo = attrs(&[("peer.service", "geo")]);
        let p = peer_node(&geo, rule).unwrap();
        assert_eq!((&*p.name, p.kind), ("geo", NodeKind::External));
        let queue = attrs(&[
            ("messaging.system", "kafka"),
            ("messaging.destination.name", "orders"),
        ]);
        let q = peer_node(&queue, rule).unwrap();
        assert_eq!((&*q.name, q.kind), ("orders", NodeKind::Messaging));
        assert!(peer_node(&attrs(&[("net.peer.name", "loki")]), rule).is_none());
    }
}
