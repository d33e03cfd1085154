//! A `wasi:http` host for the tests and benches, serving a component built for `wasm32-wasip2`
//! on a port (`serve`), or running a command component with outgoing `wasi:http` (`run`), with
//! the environment given and nothing else inherited but `PATH`: `jco serve` and `jco run`, the
//! Bytecode Alliance's component host on Node.js (scripts/test.sh installs it from npm into
//! `.venv/jco`), or `wasmtime serve` where one is installed (the benches compare them). `jco
//! serve` runs the component in a Node.js process of its own: the host's processes are one
//! process group, killed when the host is dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `jco` command: `MAILBRIDGE_JCO`, or the one scripts/test.sh installs.
pub fn jco() -> PathBuf {
    std::env::var_os("MAILBRIDGE_JCO")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace().join(".venv/jco/node_modules/.bin/jco"))
}

/// A component `cargo build --target wasm32-wasip2` made, of this build's profile (debug for the
/// tests, release for the benches).
pub fn component(name: &str) -> PathBuf {
    crate::build_dir(Some("wasm32-wasip2")).join(format!("{name}.wasm"))
}

/// Which `wasi:http` host serves a component.
#[derive(Debug, Clone)]
pub enum WasiHost {
    /// `jco serve` ([`jco`]).
    Jco,
    /// `wasmtime serve`, this binary.
    Wasmtime(PathBuf),
}

/// What the host does with the component.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Serves `wasi:http/proxy` requests on this port.
    Serve(u16),
    /// Runs it as a `wasi:cli` command.
    Run,
}

impl WasiHost {
    fn command(
        &self,
        component: &Path,
        mode: Mode,
        env: &[(String, String)],
    ) -> tokio::process::Command {
        match self {
            WasiHost::Jco => {
                // jco hands the process's environment to the component.
                let mut cmd = tokio::process::Command::new(jco());
                match mode {
                    Mode::Serve(port) => cmd.arg("serve").arg(component).args([
                        "--host",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                    ]),
                    Mode::Run => cmd.arg("run").arg(component),
                };
                cmd
            }
            WasiHost::Wasmtime(wasmtime) => {
                let mut cmd = tokio::process::Command::new(wasmtime);
                match mode {
                    Mode::Serve(port) => {
                        cmd.args(["serve", "-Scli", "--addr", &format!("127.0.0.1:{port}")])
                    }
                    Mode::Run => cmd.args(["run", "-Shttp"]),
                };
                // The component's environment, as wasi:cli's; the host's own is not passed.
                for (k, v) in env {
                    cmd.arg("--env").arg(format!("{k}={v}"));
                }
                cmd.arg(component);
                cmd
            }
        }
    }
}

/// One component served or run by a [`WasiHost`].
pub struct ComponentHost {
    /// `http://127.0.0.1:{port}` where it serves; empty for a command.
    pub url: String,
    /// From the host's start to its port accepting connections (the component transpiled,
    /// compiled and instantiated).
    pub ready_after: Duration,
    child: tokio::process::Child,
}

impl Drop for ComponentHost {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl ComponentHost {
    /// Serves `component` with `jco serve` on `port` with `env`; ready when the port accepts
    /// connections.
    pub async fn serve(
        component: &Path,
        port: u16,
        env: &[(String, String)],
    ) -> Result<ComponentHost, String> {
        Self::serve_on(&WasiHost::Jco, component, port, env).await
    }

    /// Serves `component` with `host`.
    pub async fn serve_on(
        host: &WasiHost,
        component: &Path,
        port: u16,
        env: &[(String, String)],
    ) -> Result<ComponentHost, String> {
        Self::start(host, component, Mode::Serve(port), env).await
    }

    /// Runs the command `component` with `host` until the host is dropped; an `Err` if it is
    /// missing or exits within its first second.
    pub async fn run(
        host: &WasiHost,
        component: &Path,
        env: &[(String, String)],
    ) -> Result<ComponentHost, String> {
        Self::start(host, component, Mode::Run, env).await
    }

    async fn start(
        host: &WasiHost,
        component: &Path,
        mode: Mode,
        env: &[(String, String)],
    ) -> Result<ComponentHost, String> {
        if !component.exists() {
            return Err(format!(
                "{} is missing: cargo build --target wasm32-wasip2 (scripts/test.sh builds it)",
                component.display()
            ));
        }
        let started = Instant::now();
        let child = host
            .command(component, mode, env)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{host:?}: {e} (scripts/test.sh installs jco)"))?;
        // From here on, dropping the host (an early return too) kills the process group.
        let mut served = ComponentHost {
            url: String::new(),
            ready_after: Duration::ZERO,
            child,
        };
        let Mode::Serve(port) = mode else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return match served.child.try_wait() {
                Ok(Some(status)) => Err(format!("{host:?} exited: {status}")),
                _ => Ok(served),
            };
        };
        served.url = format!("http://127.0.0.1:{port}");
        let deadline = started + Duration::from_secs(120);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                served.ready_after = started.elapsed();
                return Ok(served);
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                return Err(format!("{host:?} exited: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("{host:?} did not listen within 120 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
