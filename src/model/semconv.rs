//! OpenTelemetry semantic-convention keys the graph reads, in one place.
//!
//! Both current and legacy names are listed where the conventions renamed a
//! key, because real exporters in the wild still send the old ones.

pub const SERVICE_NAME: &str = "service.name";
pub const K8S_NAMESPACE: &str = "k8s.namespace.name";
pub const K8S_DEPLOYMENT: &str = "k8s.deployment.name";

pub const PEER_SERVICE: &str = "peer.service";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
pub const NETWORK_PEER_PORT: &str = "network.peer.port";

pub const DB_SYSTEM: &str = "db.system";
pub const DB_SYSTEM_NAME: &str = "db.system.name";
pub const DB_NAME: &str = "db.name";
pub const DB_NAMESPACE: &str = "db.namespace";

pub const MESSAGING_SYSTEM: &str = "messaging.system";
pub const MESSAGING_DESTINATION: &str = "messaging.destination.name";
/// Pre-1.17 name of `messaging.destination.name`.
pub const MESSAGING_DESTINATION_LEGACY: &str = "messaging.destination";
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";

pub const HTTP_STATUS_CODE: &str = "http.response.status_code";
/// Pre-1.21 name of `http.response.status_code`.
pub const HTTP_STATUS_CODE_LEGACY: &str = "http.status_code";
pub const HTTP_RESEND_COUNT: &str = "http.request.resend_count";
pub const RPC_SYSTEM: &str = "rpc.system";
pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
pub const EXCEPTION_TYPE: &str = "exception.type";
pub const EXCEPTION_EVENT: &str = "exception";
pub const ERROR_TYPE: &str = "error.type";
pub const MESSAGING_KAFKA_KEY: &str = "messaging.kafka.message.key";
pub const MESSAGING_PARTITION: &str = "messaging.destination.partition.id";
/// Pre-1.24 name of the Kafka partition attribute.
pub const MESSAGING_KAFKA_PARTITION_LEGACY: &str = "messaging.kafka.destination.partition";
pub const EXCEPTION_MESSAGE: &str = "exception.message";
