//! Test and enable: every part of a mailbox's configuration checked in order, each with a result
//! and, when it fails, a sentence that says what to do; the mailbox enabled when all pass. The
//! results are kept on the mailbox's health. Testing every mailbox of a profile is a run of
//! `Test` jobs, one per mailbox, whose progress is read from those kept results.

use crate::crypto::random_token;
use crate::model::*;
use crate::ports::{Clock, Cond, JobQueue, MailGraph};
use crate::repo::Repos;
use crate::services::alerts::Alerts;
use crate::services::subscriptions::Subscriptions;
use crate::services::tokens::Tokens;
use crate::services::worker::Done;
use crate::{Error, Result, Say};
use serde::Serialize;
use std::sync::Arc;

pub struct Checks {
    pub repos: Repos,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<Subscriptions>,
    pub alerts: Arc<Alerts>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
}

/// How a profile's run is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    #[serde(flatten)]
    pub run: TestRun,
    pub total: usize,
    pub done: usize,
    pub passed: usize,
    pub failed: usize,
    /// The mailboxes tested so far, with the checks that failed.
    pub results: Vec<RunResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    pub mailbox_id: MailboxId,
    pub address: String,
    pub passed: bool,
    pub failed: Vec<Check>,
}

fn passed(check: CheckKind, detail: impl Into<Say>) -> Check {
    Check {
        check,
        result: CheckResult::Passed,
        detail: detail.into(),
        action: None,
    }
}

fn failed(check: CheckKind, detail: impl Into<Say>, action: impl Into<Say>) -> Check {
    Check {
        check,
        result: CheckResult::Failed,
        detail: detail.into(),
        action: Some(action.into()),
    }
}

fn skipped(check: CheckKind, detail: impl Into<Say>) -> Check {
    Check {
        check,
        result: CheckResult::Skipped,
        detail: detail.into(),
        action: None,
    }
}

fn error_check(check: CheckKind, e: &Error) -> Check {
    failed(check, e.to_string(), e.advice())
}

impl Checks {
    /// Tests a mailbox; with `enable`, enables it when every check passes. The report is kept.
    pub async fn test(&self, id: &str, enable: bool, run: Option<String>) -> Result<TestReport> {
        let mut mailbox = self.repos.mailbox(id).await?;
        let mut checks = Vec::new();
        let session = match self.tokens.session(&mailbox).await {
            Ok(s) => {
                checks.push(passed(
                    CheckKind::Token,
                    Say::TokenObtained {
                        profile: s.profile.name.clone(),
                    },
                ));
                Some(s)
            }
            Err(e) => {
                checks.push(error_check(CheckKind::Token, &e));
                None
            }
        };
        let reached = match &session {
            None => {
                checks.push(skipped(CheckKind::Mailbox, Say::NoToken));
                false
            }
            Some(s) => match self.graph.folder(s.ctx(), &mailbox.user_id, "inbox").await {
                Ok(_) => {
                    checks.push(passed(
                        CheckKind::Mailbox,
                        Say::Reachable {
                            address: mailbox.address.clone(),
                        },
                    ));
                    true
                }
                Err(e) => {
                    checks.push(error_check(CheckKind::Mailbox, &e));
                    false
                }
            },
        };
        match (&session, reached) {
            (Some(s), true) => checks.push(self.folders(s.ctx(), &mailbox).await),
            _ => checks.push(skipped(CheckKind::Folders, Say::NotReached)),
        }
        checks.push(if mailbox.approved {
            passed(CheckKind::Approval, Say::Approved)
        } else {
            failed(
                CheckKind::Approval,
                Say::AwaitingApproval,
                Say::ApproveFirst,
            )
        });
        let ready = checks.iter().all(|c| c.result == CheckResult::Passed);
        let will_be_active = ready && (enable || mailbox.enabled);
        checks.push(if !will_be_active {
            skipped(
                CheckKind::Notifications,
                if ready {
                    Say::CheckedWhenEnabled
                } else {
                    Say::EarlierCheckFailed
                },
            )
        } else if !mailbox.can_subscribe() {
            passed(CheckKind::Notifications, Say::SharedPolled)
        } else {
            self.notifications(&mailbox).await
        });
        let all = checks.iter().all(|c| c.result != CheckResult::Failed);
        if all && enable && !mailbox.enabled {
            let now = self.clock.now();
            mailbox = self
                .repos
                .mailboxes
                .update(id, |m| {
                    let mut m = m?;
                    m.enabled = true;
                    m.updated_at = now;
                    Some(m)
                })
                .await?
                .ok_or_else(|| Error::NotFound(format!("mailbox {id}")))?;
            self.subscriptions.activate(&mailbox).await?;
            tracing::info!(mailbox = %id, "mailbox tested and enabled");
        }
        let report = TestReport {
            passed: all,
            enabled: mailbox.enabled,
            at: self.clock.now(),
            checks,
            run,
        };
        let kept = report.clone();
        self.alerts
            .touch(id, |h| h.last_test = Some(kept.clone()))
            .await?;
        Ok(report)
    }

    async fn folders(&self, ctx: crate::ports::GraphCtx<'_>, mailbox: &Mailbox) -> Check {
        if mailbox.folders.is_empty() {
            return failed(CheckKind::Folders, Say::NoFolderChosen, Say::ChooseAFolder);
        }
        let mut names = Vec::new();
        for f in &mailbox.folders {
            match self.graph.folder(ctx, &mailbox.user_id, &f.id).await {
                Ok(_) => names.push(f.display_name.clone()),
                Err(Error::NotFound(_)) => {
                    return failed(
                        CheckKind::Folders,
                        Say::FolderGone {
                            name: f.display_name.clone(),
                        },
                        Say::FolderGoneChooseAgain {
                            name: f.display_name.clone(),
                        },
                    )
                }
                Err(e) => return error_check(CheckKind::Folders, &e),
            }
        }
        passed(CheckKind::Folders, Say::FoldersReadable { names })
    }

    async fn notifications(&self, mailbox: &Mailbox) -> Check {
        let mut until = Vec::new();
        for f in &mailbox.folders {
            match self.subscriptions.ensure(mailbox, &f.id).await {
                Ok(sub) => until.push(sub.expires_at),
                Err(e) => {
                    return failed(
                        CheckKind::Notifications,
                        Say::SubscriptionRefused {
                            folder: f.display_name.clone(),
                            detail: e.to_string(),
                        },
                        match e {
                            Error::Invalid(_) | Error::Permanent(_) => {
                                Say::NotificationUrlUnreachable
                            }
                            _ => e.advice(),
                        },
                    )
                }
            }
        }
        passed(
            CheckKind::Notifications,
            Say::SubscriptionsLive {
                count: until.len(),
                renew_before: until.iter().min().copied(),
            },
        )
    }

    /// Starts a test of every mailbox of a profile, in the background: one `Test` job each.
    pub async fn start_run(&self, profile_id: &str, enable: bool) -> Result<TestRun> {
        self.repos.profile(profile_id).await?;
        let mailboxes: Vec<MailboxId> = self
            .repos
            .mailboxes
            .values()
            .await?
            .into_iter()
            .filter(|m| m.profile_id == profile_id)
            .map(|m| m.id)
            .collect();
        let run = TestRun {
            id: random_token(12),
            profile_id: profile_id.into(),
            enable,
            started_at: self.clock.now(),
            mailboxes,
        };
        self.repos
            .test_runs
            .put(profile_id, &run, Cond::Any)
            .await?;
        let jobs: Vec<Job> = run
            .mailboxes
            .iter()
            .map(|m| Job::Test {
                mailbox_id: m.clone(),
                enable,
                run: run.id.clone(),
            })
            .collect();
        self.queue.send(&jobs).await?;
        Ok(run)
    }

    /// How the profile's latest run is going.
    pub async fn progress(&self, profile_id: &str) -> Result<RunProgress> {
        let run = self
            .repos
            .test_runs
            .get(profile_id)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| Error::NotFound(format!("test run of profile {profile_id}")))?;
        let mut results = Vec::new();
        for id in &run.mailboxes {
            let health = self.repos.health.get(id).await?.map(|v| v.value);
            let Some(report) = health
                .and_then(|h| h.last_test)
                .filter(|r| r.run.as_deref() == Some(run.id.as_str()))
            else {
                continue;
            };
            let address = match self.repos.mailboxes.get(id).await? {
                Some(m) => m.value.address,
                None => continue,
            };
            results.push(RunResult {
                mailbox_id: id.clone(),
                address,
                passed: report.passed,
                failed: report
                    .checks
                    .into_iter()
                    .filter(|c| c.result == CheckResult::Failed)
                    .collect(),
            });
        }
        Ok(RunProgress {
            total: run.mailboxes.len(),
            done: results.len(),
            passed: results.iter().filter(|r| r.passed).count(),
            failed: results.iter().filter(|r| !r.passed).count(),
            results,
            run,
        })
    }

    /// A `Test` job of a run.
    pub async fn run_job(&self, mailbox_id: &str, enable: bool, run: &str) -> Result<Done> {
        match self.test(mailbox_id, enable, Some(run.into())).await {
            Ok(report) => Ok(Done::Tested {
                passed: report.passed,
            }),
            Err(Error::NotFound(_)) => Ok(Done::Skipped(format!("mailbox {mailbox_id} is gone"))),
            Err(e) => Err(e),
        }
    }
}
