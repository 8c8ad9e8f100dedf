//! What the shop is told before it starts: where each caller sends each
//! dependency's traffic, and the knobs that make services slow or failing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// How long orders waits for one reservation.
pub(crate) const RESERVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How much longer than [`ShopConfig::order_budget`] the gateway waits.
const GATEWAY_MARGIN: Duration = Duration::from_secs(2);

/// One connection between a caller and the service or store it depends on.
/// Its [`name`](Dependency::name) is the name of the proxy that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// gateway → orders.
    Orders,
    /// orders → inventory.
    Inventory,
    /// orders → payments (with client retries).
    Payments,
    /// inventory → its cache (`db.system=redis`).
    InventoryCache,
    /// inventory → its store (`db.system=postgresql`).
    InventoryDb,
    /// notifier → the email provider.
    EmailProvider,
}

impl Dependency {
    pub const ALL: [Dependency; 6] = [
        Dependency::Orders,
        Dependency::Inventory,
        Dependency::Payments,
        Dependency::InventoryCache,
        Dependency::InventoryDb,
        Dependency::EmailProvider,
    ];

    /// The stable name: the callee's node in faultline's graph and the
    /// fault proxy's name for this connection.
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Orders => "orders",
            Dependency::Inventory => "inventory",
            Dependency::Payments => "payments",
            Dependency::InventoryCache => "inventory-cache",
            Dependency::InventoryDb => "inventory-db",
            Dependency::EmailProvider => "email-provider",
        }
    }

    /// The service that makes the calls.
    pub fn caller(self) -> &'static str {
        match self {
            Dependency::Orders => "gateway",
            Dependency::Inventory | Dependency::Payments => "orders",
            Dependency::InventoryCache | Dependency::InventoryDb => "inventory",
            Dependency::EmailProvider => "notifier",
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dependency {
    type Err = ShopError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Dependency::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| ShopError::UnknownDependency(name.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error(
        "unknown shop dependency {0:?}; the dependencies are orders, inventory, payments, \
         inventory-cache, inventory-db and email-provider"
    )]
    UnknownDependency(String),
    #[error("ShopConfig.{field} is {value}; {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// How the shop is wired and how its services behave.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    /// Where a caller sends a dependency's traffic instead of the dependency
    /// itself, e.g. a fault-proxy listener (`127.0.0.1:26379`). A dependency
    /// missing here is called directly.
    pub via: BTreeMap<Dependency, SocketAddr>,
    /// Mean time payments takes per charge (±50 % jitter). Default 5 ms.
    pub payments_latency: Duration,
    /// Share of charges payments declines with HTTP 503, 0 to 1. Default 0.
    pub payments_failure_rate: f64,
    /// How long orders waits for one charge before the attempt counts as
    /// failed. Default 300 ms.
    pub payments_timeout: Duration,
    /// Attempts orders makes at reserve + charge per order. Default 3.
    pub payment_attempts: u32,
    /// Wait after the first failed attempt, doubled after each further one.
    /// Default 50 ms.
    pub retry_backoff: Duration,
    /// Mean time the email provider takes per message (±50 % jitter).
    /// Default 30 ms.
    pub email_latency: Duration,
    /// How long the notifier waits for the email provider. Default 250 ms.
    pub email_timeout: Duration,
    /// Deliveries of one message before the notifier drops it. Default 5.
    pub max_deliveries: u32,
    /// Items in stock per SKU at start. Default 1,000,000.
    pub initial_stock: u64,
    /// How long each service's batch span processor waits before it
    /// exports. Default 200 ms.
    pub export_delay: Duration,
}

impl Default for ShopConfig {
    fn default() -> Self {
        ShopConfig {
            via: BTreeMap::new(),
            payments_latency: Duration::from_millis(5),
            payments_failure_rate: 0.0,
            payments_timeout: Duration::from_millis(300),
            payment_attempts: 3,
            retry_backoff: Duration::from_millis(50),
            email_latency: Duration::from_millis(30),
            email_timeout: Duration::from_millis(250),
            max_deliveries: 5,
            initial_stock: 1_000_000,
            export_delay: Duration::from_millis(200),
        }
    }
}

impl ShopConfig {
    /// Every caller talks to its dependency directly; default knobs.
    pub fn direct() -> ShopConfig {
        ShopConfig::default()
    }

    /// Callers reach the named dependencies through the given addresses
    /// (fault-proxy listeners, keyed by dependency name); the others
    /// directly. Fails on a name that is not a dependency.
    pub fn via_proxies<I, K>(listeners: I) -> Result<ShopConfig, ShopError>
    where
        I: IntoIterator<Item = (K, SocketAddr)>,
        K: AsRef<str>,
    {
        let via = listeners
            .into_iter()
            .map(|(name, addr)| Ok((name.as_ref().parse()?, addr)))
            .collect::<Result<_, ShopError>>()?;
        Ok(ShopConfig {
            via,
            ..ShopConfig::default()
        })
    }

    /// The longest orders can take: every attempt timing out on both
    /// calls, plus the backoffs between attempts.
    pub fn order_budget(&self) -> Duration {
        let attempts = self.payment_attempts.max(1);
        let per_attempt = RESERVE_TIMEOUT + self.payments_timeout;
        let backoffs = (0..attempts - 1)
            .map(|i| self.retry_backoff * 2u32.pow(i.min(16)))
            .sum::<Duration>();
        per_attempt * attempts + backoffs
    }

    /// How long the gateway waits for orders: [`order_budget`](Self::order_budget)
    /// plus 2 s, so the gateway never gives up on an order that is still
    /// being placed (a client of the gateway should wait longer still).
    pub fn gateway_timeout(&self) -> Duration {
        self.order_budget() + GATEWAY_MARGIN
    }

    /// Refuses knobs the shop cannot run with.
    pub fn validate(&self) -> Result<(), ShopError> {
        let invalid = |field, value: String, expected| {
            Err(ShopError::Invalid {
                field,
                value,
                expected,
            })
        };
        if !(0.0..=1.0).contains(&self.payments_failure_rate) {
            return invalid(
                "payments_failure_rate",
                self.payments_failure_rate.to_string(),
                "expected a share from 0 to 1",
            );
        }
        if self.payment_attempts == 0 {
            return invalid("payment_attempts", "0".into(), "expected at least 1");
        }
        if self.max_deliveries == 0 {
            return invalid("max_deliveries", "0".into(), "expected at least 1");
        }
        Ok(())
    }
}

/// The address each caller currently uses per dependency; shared by every
/// service, changed by [`RunningShop::reroute`](super::RunningShop::reroute).
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes(Arc<RwLock<BTreeMap<Dependency, SocketAddr>>>);

impl Routes {
    /// `via` where given, else the real address.
    pub fn new(
        upstreams: &BTreeMap<Dependency, SocketAddr>,
        via: &BTreeMap<Dependency, SocketAddr>,
    ) -> Routes {
        let map = upstreams
            .iter()
            .map(|(d, addr)| (*d, *via.get(d).unwrap_or(addr)))
            .collect();
        Routes(Arc::new(RwLock::new(map)))
    }

    pub fn addr(&self, dep: Dependency) -> SocketAddr {
        self.0
            .read()
            .get(&dep)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn set(&self, dep: Dependency, addr: SocketAddr) {
        self.0.write().insert(dep, addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for d in Dependency::ALL {
            assert_eq!(d.name().parse::<Dependency>().unwrap(), d);
        }
        let err = "inventory_cache".parse::<Dependency>().unwrap_err();
        assert!(err.to_string().contains("inventory-cache"), "{err}");
    }

    #[test]
    fn via_proxies_routes_only_the_named_dependencies() {
        let proxy: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let cfg = ShopConfig::via_proxies([("payments", proxy)]).unwrap();
        let real: BTreeMap<_, _> = Dependency::ALL
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d, SocketAddr::from(([127, 0, 0, 1], 2000 + i as u16))))
            .collect();
        let routes = Routes::new(&real, &cfg.via);
        assert_eq!(routes.addr(Dependency::Payments), proxy);
        assert_eq!(routes.addr(Dependency::Orders), real[&Dependency::Orders]);
        assert!(ShopConfig::via_proxies([("billing", proxy)]).is_err());
    }

    #[test]
    fn the_gateway_outwaits_every_retry() {
        let cfg = ShopConfig::direct();
        // 3 × (2 s + 300 ms) + 50 ms + 100 ms.
        assert_eq!(cfg.order_budget(), Duration::from_millis(7_050));
        assert_eq!(cfg.gateway_timeout(), Duration::from_millis(9_050));
    }

    #[test]
    fn validation_names_the_field() {
        let cfg = ShopConfig {
            payments_failure_rate: 1.5,
            ..ShopConfig::direct()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("payments_failure_rate"), "{err}");
        assert!(ShopConfig::direct().validate().is_ok());
    }
}
