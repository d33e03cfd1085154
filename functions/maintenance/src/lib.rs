//! The maintenance function's wiring: the scheduled round, which reads the state's partitions it
//! decides from and queues each mailbox's due upkeep for the import function.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_core::ports::SystemClock;
use mailbridge_core::repo::Repos;
use mailbridge_core::services::maintenance::Maintenance;
use mailbridge_core::services::upkeep::Schedule;
use std::sync::Arc;

/// What the maintenance function uses of AWS; its IAM policy in `template.yaml` is derived from
/// this. It reads, and queues: no secret, no token, no Graph.
pub const PORTS: &[Port] = &[Port::StateScan, Port::QueueSend];

/// The maintenance round over its ports. Variables: `TABLE_NAME`, `QUEUE_URL`.
pub fn wire(env: &AwsEnv) -> Result<Arc<Maintenance>, BoxError> {
    Ok(Arc::new(Maintenance {
        repos: Repos::new(env.state_scan()?),
        queue: env.queue()?,
        clock: Arc::new(SystemClock),
        schedule: Schedule::default(),
    }))
}
