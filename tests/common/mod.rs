//! Helpers shared by the integration tests: reproducible windows and tolerance checks.
#![allow(dead_code)]

use rnnlm::rng::Rng;
use rnnlm::Window;

/// A batch-major window of inputs and targets over `0..vocab`, reproducible from `seed`.
/// `ignore_share` of the targets are `-1`; ids are drawn from a pool of `distinct` ids so that
/// small pools repeat ids within the window.
pub fn random_window(
    window: Window,
    vocab: usize,
    distinct: usize,
    ignore_share: f64,
    seed: u64,
) -> (Vec<u32>, Vec<i32>) {
    let mut rng = Rng::new(seed);
    let pool = distinct.clamp(1, vocab);
    let offset = (rng.next_u64() % vocab as u64) as usize;
    let draw = |rng: &mut Rng| ((offset + (rng.next_u64() % pool as u64) as usize) % vocab) as u32;
    let n = window.tokens();
    let xs: Vec<u32> = (0..n).map(|_| draw(&mut rng)).collect();
    let ts: Vec<i32> = (0..n).map(|_| if rng.uniform() < ignore_share { -1 } else { draw(&mut rng) as i32 }).collect();
    (xs, ts)
}

/// Largest absolute difference over the largest magnitude of `want` (a normwise relative
/// error, which stays meaningful when single elements cancel to nearly zero).
pub fn normwise_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// The directory holding `ptb/`: `$RNNLM_DATA`, else `./data` in the repository. `None` when none has the files: the test then says on stderr that it
/// is skipped and why, and returns. With `RNNLM_REQUIRE_PTB=1` (as `.ci/run` sets) a missing
/// PTB fails the test instead, so that CI never skips it.
pub fn ptb_data() -> Option<std::path::PathBuf> {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [std::env::var_os("RNNLM_DATA").map(std::path::PathBuf::from), Some(repository.join("data"))];
    let found = candidates.into_iter().flatten().find(|dir| dir.join("ptb/ptb.train.txt").is_file());
    if found.is_none() {
        unavailable(
            "RNNLM_REQUIRE_PTB",
            "the Penn Treebank was not found (no ptb/ptb.train.txt in $RNNLM_DATA or ./data; `rnnlm download ptb` puts it in ./data)",
        );
    }
    found
}

/// Whether `python3` can import `safetensors` and `numpy`. If not, the test says on stderr that
/// it is skipped and why (it should then return); with `RNNLM_REQUIRE_PYTHON=1` (as `.ci/run`
/// sets) it fails instead.
pub fn python_with_safetensors() -> bool {
    let probe = std::process::Command::new("python3").args(["-c", "import safetensors, numpy"]).output();
    let reason = match probe {
        Ok(output) if output.status.success() => return true,
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.trim_end().lines().last().unwrap_or("").to_owned();
            format!("python3 cannot import safetensors and numpy ({last}; pip install safetensors numpy)")
        }
        Err(error) => format!("python3 cannot be run ({error})"),
    };
    unavailable("RNNLM_REQUIRE_PYTHON", &reason);
    false
}

/// Reports a missing requirement of the running test: a failure if `variable` is set to 1, a
/// line on stderr otherwise. The line is written to the process's stderr directly, past the
/// test harness's capture, so that it shows in a normal `cargo test` run.
fn unavailable(variable: &str, reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if std::env::var(variable).is_ok_and(|value| value == "1") {
        panic!("{test}: {reason}; {variable}=1 says this test must run");
    }
    // One write, so that the line is not split by the harness's own output.
    let line = format!("skipped {test}: {reason} (set {variable}=1 to make this a failure)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers GET `/<name>` with `files[name]` and 404
/// otherwise. It serves at most `max_requests` requests and stops after two minutes at most.
pub struct LoopbackServer {
    pub base_url: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackServer {
    pub fn start(files: Vec<(String, Vec<u8>)>, max_requests: usize) -> LoopbackServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let base_url = format!("http://{}/", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let thread = std::thread::spawn(move || {
            let mut served = 0;
            while served < max_requests && std::time::Instant::now() < deadline {
                let mut stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                };
                served += 1;
                stream.set_nonblocking(false).ok();
                stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
                let response = match files.iter().find(|(name, _)| *name == path) {
                    Some((_, body)) => {
                        let mut r =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                stream.write_all(&response).ok();
            }
        });
        LoopbackServer { base_url, thread: Some(thread) }
    }

    /// A base URL on which nothing listens (a port just bound and released).
    pub fn down_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        url
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        // The thread ends after its request budget; do not wait on it here.
        drop(self.thread.take());
    }
}

/// The three PTB files as (name, bytes), read from the data directory `data` (see
/// [`ptb_data`]).
pub fn ptb_files(data: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let dir = data.join("ptb");
    ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]
        .iter()
        .map(|name| (name.to_string(), std::fs::read(dir.join(name)).unwrap()))
        .collect()
}

/// Names of the entries of `dir` (empty if it does not exist).
pub fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
