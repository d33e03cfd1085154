//! `mailbridge-certificate --alias alias/mailbridge/contoso [--subject NAME] [--days 365]`:
//! creates the KMS key (unless the alias exists) and prints its certificate (PEM) to upload to the
//! app registration. Uses the usual AWS credentials and region.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut alias, mut subject, mut days) = (None, "mailbridge".to_string(), 365u32);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--alias", Some(v)) => alias = Some(v),
            ("--subject", Some(v)) => subject = v,
            ("--days", Some(v)) => match v.parse() {
                Ok(d) if (1..=3650).contains(&d) => days = d,
                _ => fail("--days is a number of days, 1 to 3650"),
            },
            _ => fail("usage: mailbridge-certificate --alias alias/mailbridge/<name> [--subject NAME] [--days 365]"),
        }
    }
    let Some(alias) = alias else {
        fail("--alias alias/mailbridge/<name> is required");
    };
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_kms::Client::new(&config);
    match mailbridge_certificate::certificate(&client, &alias, &subject, days).await {
        Ok(pem) => print!("{pem}"),
        Err(e) => fail(&format!("mailbridge-certificate: {e}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}
