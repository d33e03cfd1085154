//! `mailbridge-local [serve|demo]`: run mailbridge on this machine against the simulator.
//! `serve` keeps its data directory (default `.local/mailbridge`) from one run to the next;
//! `demo` starts afresh in its own (default `.local/mailbridge-demo`).

use mailbridge_core::model::ImportState;
use mailbridge_core::ports::{BlobReader, BlobStore};
use mailbridge_local::config::Config;
use mailbridge_local::{sample_messages, Options, Purpose, Runner};
use std::path::PathBuf;
use std::time::Duration;

type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "usage:
  mailbridge-local serve [--config FILE] [--data DIR] [--listen ADDR]
                                             real tenants, as the configuration says (README, \"One server\")
  mailbridge-local serve --simulator [opts]  with a built-in Microsoft 365 simulator and its demo tenant
  mailbridge-local demo [opts]               one full round against the simulator, in a fresh directory
opts: [--data DIR] [--listen ADDR] [--sim-listen ADDR] [--sim-tls] [--max-message-mb N] [--event-hook URL]";

#[tokio::main]
async fn main() {
    mailbridge_edge::logging::init(false);
    if let Err(e) = run().await {
        eprintln!("mailbridge: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Res {
    // Every file mailbridge creates (state, messages, events, keys) is its owner's alone.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let mut opts = Options::default();
    let mut listen = None;
    let mut args = std::env::args().skip(1);
    let mut mode = "serve".to_string();
    let mut data_dir = None;
    let mut config = None;
    let mut simulator = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "serve" | "demo" => mode = a,
            "--config" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            "--simulator" => simulator = true,
            "--data" => data_dir = Some(args.next().ok_or("--data needs a directory")?.into()),
            "--listen" => listen = Some(args.next().ok_or("--listen needs an address")?),
            "--sim-listen" => {
                opts.sim_listen = args.next().ok_or("--sim-listen needs an address")?;
                simulator = true;
            }
            "--sim-tls" => {
                opts.sim_tls = true;
                simulator = true;
            }
            "--event-hook" => {
                opts.event_hook = Some(args.next().ok_or("--event-hook needs a URL")?)
            }
            "--max-message-mb" => {
                opts.max_message_mb = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--max-message-mb needs a number of MB (1 to 150)")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if mode == "serve" && !simulator {
        // On the command line, over the environment, over the file.
        let data_dir = data_dir.map(|d: PathBuf| d.display().to_string());
        return serve(config, move |key| match key {
            "MAILBRIDGE_DATA_DIR" if data_dir.is_some() => data_dir.clone(),
            "MAILBRIDGE_LISTEN" if listen.is_some() => listen.clone(),
            other => std::env::var(other).ok(),
        })
        .await;
    }
    if let Some(listen) = listen {
        opts.listen = listen;
    }
    if config.is_some() {
        return Err("--config is for serve without the simulator".into());
    }
    if mode == "demo" {
        opts.purpose = Purpose::Demo;
        opts.data_dir = ".local/mailbridge-demo".into();
    }
    if let Some(dir) = data_dir {
        opts.data_dir = dir;
    }
    let runner = Runner::start(opts).await?;
    if mode == "demo" {
        return demo(&runner).await;
    }
    println!(
        "mailbridge is running on {} (Microsoft 365 simulator on {})",
        runner.base_url,
        runner.sim.base_url()
    );
    println!(
        "  connect the demo mailbox: open {}/connect (signs in as {})",
        runner.base_url, runner.demo.user_upn
    );
    println!("  deliver a message:        curl -X POST --data-binary @message.eml '{}/_sim/users/{}/messages?folder=inbox'", runner.sim.base_url(), runner.demo.user_upn);
    println!(
        "  admin API:                curl -H 'Authorization: Bearer {}' {}/admin/mailboxes",
        runner.admin_token.expose(),
        runner.base_url
    );
    println!(
        "  imported messages:        {}",
        runner.data_dir().join("store").display()
    );
    println!(
        "  import events:            {} (and POSTed to --event-hook URL if given)",
        runner.data_dir().join("events.jsonl").display()
    );
    stop_signal().await?;
    stopped(&runner.deployment).await;
    Ok(())
}

/// How long jobs being worked may take to finish once mailbridge is told to stop.
const GRACE: Duration = Duration::from_secs(30);

/// SIGTERM (systemd, `kill`) or Ctrl-C.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

async fn stopped(deployment: &mailbridge_local::Deployment) {
    eprintln!(
        "mailbridge: stopping; jobs being worked have {} s to finish",
        GRACE.as_secs()
    );
    let handed_back = deployment.shutdown(GRACE).await;
    if handed_back > 0 {
        eprintln!("mailbridge: {handed_back} jobs handed back to the queue for the next start");
    }
    eprintln!("mailbridge: stopped");
}

/// `serve` for real tenants: everything from the configuration, checked before anything starts.
async fn serve(config: Option<PathBuf>, env: impl Fn(&str) -> Option<String>) -> Res {
    let config = Config::load(config.as_deref(), env)?;
    let deployment = mailbridge_local::serve(&config).await?;
    println!(
        "mailbridge is running on {} (public URL {}), data in {}",
        deployment.addr,
        deployment.base_url,
        deployment.data_dir().display()
    );
    for p in &config.profiles {
        println!(
            "  profile {}: connect a mailbox at {}/connect?profile={}",
            p.id, deployment.base_url, p.id
        );
    }
    println!(
        "  admin API: {}/admin/mailboxes with the token in the {}",
        deployment.base_url,
        config.admin_token.describe()
    );
    stop_signal().await?;
    stopped(&deployment).await;
    Ok(())
}

async fn demo(r: &Runner) -> Res {
    println!(
        "1. Connecting {} through /connect → Microsoft sign-in (simulated) → /oauth/callback",
        r.demo.user_upn
    );
    let (status, page) = r.connect_demo_mailbox().await?;
    if status != 200 {
        return Err(format!("the connection failed ({status}): {page}").into());
    }
    let mailbox = r
        .services
        .admin
        .mailboxes()
        .await?
        .into_iter()
        .next()
        .ok_or("no mailbox after connecting")?
        .mailbox;
    println!(
        "   connected mailbox {} ({}), folders: {:?}",
        mailbox.id,
        mailbox.address,
        mailbox
            .folders
            .iter()
            .map(|f| &f.display_name)
            .collect::<Vec<_>>()
    );
    println!("2. Delivering three messages into the simulated Inbox");
    let mut ids = Vec::new();
    for (name, mime) in sample_messages() {
        let id = r
            .sim
            .deliver(&r.demo.user_upn, "inbox", mime)
            .ok_or("delivery failed")?;
        println!("   delivered '{name}' as {}…", &id[..24.min(id.len())]);
        ids.push(id);
    }
    println!("3. Waiting for the notifications to be imported");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut done = Vec::new();
        for id in &ids {
            if let Some(v) = r.services.repos.imports.of(&mailbox.id).get(id).await? {
                if let ImportState::Imported {
                    eml_key,
                    metadata_key,
                    size,
                    ..
                } = v.value
                {
                    done.push((eml_key, metadata_key, size));
                }
            }
        }
        if done.len() == ids.len() {
            for (eml, meta, size) in done {
                let doc: serde_json::Value = serde_json::from_slice(
                    &r.services.blobs.get(&meta).await?.unwrap_or_default(),
                )?;
                println!(
                    "   imported {:>5} bytes  subject: {}",
                    size,
                    doc["subject"].as_str().unwrap_or("(none)")
                );
                println!(
                    "                      .eml: {}",
                    r.services.blobs.locate(&eml)
                );
            }
            println!(
                "Done: {} messages imported with {} Graph $value calls.",
                ids.len(),
                r.sim.counter("mime")
            );
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "only {} of {} messages were imported within 30 s",
                done.len(),
                ids.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
