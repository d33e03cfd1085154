//! The simulator on its own, with a seeded demo tenant:
//! `cargo run -p m365-sim -- [--listen ADDR] [--redirect URI] [--tls --ca-out FILE] [--cloud NAME]`.

use m365_sim::{Options, Sim};

const USAGE: &str = "usage: m365-sim [--listen ADDR] [--redirect URI] [--tls] [--ca-out FILE] [--cloud global|usgov|dod|china] [--https-notifications-only]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = Options {
        addr: "127.0.0.1:8400".into(),
        ..Options::default()
    };
    let mut redirect = "http://127.0.0.1:8300/oauth/callback".to_string();
    let mut ca_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value; {USAGE}"));
        match a.as_str() {
            "--listen" => opts.addr = value()?,
            "--redirect" => redirect = value()?,
            "--tls" => opts.tls = true,
            "--ca-out" => ca_out = Some(value()?),
            "--https-notifications-only" => opts.https_notifications_only = true,
            "--cloud" => {
                let (resource, instance) = match value()?.as_str() {
                    "global" => ("https://graph.microsoft.com", "microsoftonline.com"),
                    "usgov" => ("https://graph.microsoft.us", "microsoftonline.us"),
                    "dod" => ("https://dod-graph.microsoft.us", "microsoftonline.us"),
                    "china" => (
                        "https://microsoftgraph.chinacloudapi.cn",
                        "partner.microsoftonline.cn",
                    ),
                    other => return Err(format!("unknown cloud {other}; {USAGE}").into()),
                };
                opts.resource = resource.into();
                opts.cloud_instance = instance.into();
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}; {USAGE}").into()),
        }
    }
    let sim = Sim::start_with(opts).await?;
    let demo = sim.seed_demo(&redirect);
    if let (Some(path), Some(pem)) = (&ca_out, sim.ca_pem()) {
        std::fs::write(path, pem)?;
        println!(
            "CA certificate written to {path} (trust it, e.g. MAILBRIDGE_EXTRA_CA_FILE={path})"
        );
    }
    println!("Microsoft 365 simulator on {}", sim.base_url());
    println!("{}", serde_json::to_string_pretty(&demo)?);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
