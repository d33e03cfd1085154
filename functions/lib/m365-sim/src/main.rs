//! The simulator on its own: `cargo run -p m365-sim -- [address] [redirect-uri]`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8400".into());
    let redirect = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8300/oauth/callback".into());
    let sim = m365_sim::Sim::start(&addr).await?;
    let demo = sim.seed_demo(&redirect);
    println!("Microsoft 365 simulator on {}", sim.base_url());
    println!(
        "{}",
        serde_json::to_string_pretty(&demo).unwrap_or_default()
    );
    tokio::signal::ctrl_c().await
}
