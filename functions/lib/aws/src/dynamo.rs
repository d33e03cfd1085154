//! State in one DynamoDB table: `pk` (partition), `sk` (sort), `body`, `v` (version), `ttl`.

use crate::iam::{Grant, Port};
use crate::sdk;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use mailbridge_core::ports::{Cond, Key, StateStore, Stored};
use mailbridge_core::{Error, Result};
use std::collections::HashMap;

pub struct DynamoStateStore {
    client: Client,
    table: String,
    /// What this store may do, as its function's IAM allows: anything it does not grant fails
    /// here, before AWS would refuse it.
    grant: Grant,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn stored(item: &HashMap<String, AttributeValue>) -> Result<Stored> {
    let body = item
        .get("body")
        .and_then(|b| b.as_s().ok())
        .ok_or_else(|| Error::storage("item without body"))?;
    let version = item
        .get("v")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::storage("item without version"))?;
    Ok(Stored {
        body: body.clone(),
        version,
    })
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            grant: Port::State.grant(),
        }
    }

    /// A store that does only what `grant` allows: its actions, on its partitions (the webhook
    /// reads subscription records; the maintenance round queries a few partitions).
    pub fn limited(client: Client, table: impl Into<String>, grant: Grant) -> Self {
        Self {
            grant,
            ..Self::new(client, table)
        }
    }

    fn may(&self, action: &str, partition: &str) -> Result<()> {
        let action_granted = self.grant.actions.contains(&action);
        let partition_granted = self
            .grant
            .leading_keys
            .is_none_or(|keys| keys.contains(&partition));
        if action_granted && partition_granted {
            return Ok(());
        }
        Err(Error::Config {
            code: "not-granted".into(),
            reason: format!("this function may not {action} in partition {partition}"),
        })
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>> {
        self.may("dynamodb:GetItem", &key.partition)?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&key.partition))
            .key("sk", s(&key.sort))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk("DynamoDB GetItem", e))?;
        out.item.as_ref().map(stored).transpose()
    }

    async fn put(
        &self,
        key: &Key,
        body: String,
        cond: Cond,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        self.may("dynamodb:UpdateItem", &key.partition)?;
        let conflict = || Error::Conflict(format!("{}/{}", key.partition, key.sort));
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.partition))
            .key("sk", s(&key.sort))
            .expression_attribute_values(":b", s(&body))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew);
        let mut set = "SET body = :b, v = if_not_exists(v, :zero) + :one".to_string();
        update = update.expression_attribute_values(":zero", n(0));
        match expires_at {
            Some(t) => {
                set.push_str(", #ttl = :ttl");
                update = update
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":ttl", n(t.timestamp()));
            }
            None => {
                set.push_str(" REMOVE #ttl");
                update = update.expression_attribute_names("#ttl", "ttl");
            }
        }
        update = match cond {
            Cond::Any => update,
            Cond::Absent => update.condition_expression("attribute_not_exists(pk)"),
            Cond::Version(v) => update
                .condition_expression("v = :expected")
                .expression_attribute_values(":expected", n(v)),
        };
        match update.update_expression(set).send().await {
            Ok(out) => out
                .attributes
                .as_ref()
                .and_then(|a| a.get("v"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::storage("DynamoDB UpdateItem returned no version")),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(conflict())
            }
            Err(e) => Err(sdk("DynamoDB UpdateItem", e)),
        }
    }

    async fn take(&self, key: &Key) -> Result<Option<Stored>> {
        self.may("dynamodb:DeleteItem", &key.partition)?;
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&key.partition))
            .key("sk", s(&key.sort))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk("DynamoDB DeleteItem", e))?;
        out.attributes
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(stored)
            .transpose()
    }

    async fn list(&self, partition: &str) -> Result<Vec<(String, Stored)>> {
        self.may("dynamodb:Query", partition)?;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(partition))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk("DynamoDB Query", e))?;
            for item in page.items() {
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                out.push((sk, stored(item)?));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}
