//! What a function may use of AWS, port by port, and the IAM statement each port needs. A
//! function's wiring declares its ports (`PORTS` beside it); a test derives the function's policy
//! from them and compares it with `template.yaml`, so that a port without its permission, or a
//! permission without its port, fails the build.

use mailbridge_core::model::SubscriptionRecord;
use mailbridge_core::repo::Record;

/// One thing a function uses of AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// Reads subscription records (GetItem on the `subscription` partition, nothing else): the
    /// webhook's only state.
    SubscriptionLookup,
    /// Queries the partitions the maintenance round reads whole
    /// ([`mailbridge_core::services::maintenance::PARTITIONS`]), nothing else.
    StateScan,
    /// The state table: GetItem, UpdateItem (conditional writes), DeleteItem (single-use takes),
    /// Query (a partition's records).
    State,
    /// Writes messages under `messages/`: PutObject (whole, and the parts of a multipart upload)
    /// and AbortMultipartUpload (a refused or cut-short message).
    MessageStore,
    /// Sends jobs to the import queue.
    QueueSend,
    /// Hands a received job back after a delay (ChangeMessageVisibility): Retry-After.
    QueueRedelivery,
    /// Lambda's SQS trigger polls and deletes with the function's role.
    QueueTrigger,
    /// Publishes `MessageImported` and `MailboxAlert` events on the event bus.
    Events,
    /// Reads the key that seals tokens at rest.
    SealingKey,
    /// Reads client secrets of server profiles, under the profile prefix only.
    ProfileSecrets,
    /// Reads the admin API's bearer token.
    AdminToken,
    /// Signs client assertions with certificate keys in KMS (`kms:Sign`), only through an alias
    /// under `alias/mailbridge/` (the only form a profile may name).
    CertificateKeys,
}

/// An IAM statement, with its resource written as `template.yaml` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub actions: &'static [&'static str],
    pub resource: &'static str,
    /// `dynamodb:LeadingKeys`: the only partitions the statement reaches.
    pub leading_keys: Option<&'static [&'static str]>,
    /// Another condition of the statement: operator, key, value.
    pub condition: Option<(&'static str, &'static str, &'static str)>,
}

const TABLE: &str = "!GetAtt StateTable.Arn";
const QUEUE: &str = "!GetAtt ImportQueue.Arn";

impl Port {
    /// The statement that grants this port, and nothing more.
    pub fn grant(self) -> Grant {
        let (actions, resource, leading_keys): (&'static [&'static str], &'static str, _) =
            match self {
                Port::SubscriptionLookup => (
                    &["dynamodb:GetItem"],
                    TABLE,
                    Some(&[<SubscriptionRecord as Record>::KIND][..]),
                ),
                Port::StateScan => (
                    &["dynamodb:Query"],
                    TABLE,
                    Some(mailbridge_core::services::maintenance::PARTITIONS),
                ),
                Port::State => (
                    &[
                        "dynamodb:DeleteItem",
                        "dynamodb:GetItem",
                        "dynamodb:Query",
                        "dynamodb:UpdateItem",
                    ],
                    TABLE,
                    None,
                ),
                Port::MessageStore => (
                    &["s3:AbortMultipartUpload", "s3:PutObject"],
                    "!Sub ${MessageBucket.Arn}/messages/*",
                    None,
                ),
                Port::QueueSend => (&["sqs:SendMessage"], QUEUE, None),
                Port::QueueRedelivery => (&["sqs:ChangeMessageVisibility"], QUEUE, None),
                Port::QueueTrigger => (
                    &[
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                        "sqs:ReceiveMessage",
                    ],
                    QUEUE,
                    None,
                ),
                Port::Events => (
                    &["events:PutEvents"],
                    "!Sub arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}",
                    None,
                ),
                Port::SealingKey => (&["secretsmanager:GetSecretValue"], "!Ref TokenKeySecret", None),
                Port::ProfileSecrets => (
                    &["secretsmanager:GetSecretValue"],
                    "!Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${ProfileSecretPrefix}*",
                    None,
                ),
                Port::AdminToken => (&["secretsmanager:GetSecretValue"], "!Ref AdminTokenSecret", None),
                Port::CertificateKeys => (
                    &["kms:Sign"],
                    "!Sub arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*",
                    None,
                ),
            };
        let condition = (self == Port::CertificateKeys).then_some((
            "StringLike",
            "kms:RequestAlias",
            "alias/mailbridge/*",
        ));
        Grant {
            actions,
            resource,
            leading_keys,
            condition,
        }
    }

    /// Used by the function's trigger (Lambda's event source), not by its code: the wiring never
    /// asks for it, the template must still grant it.
    pub fn by_trigger(self) -> bool {
        self == Port::QueueTrigger
    }
}
