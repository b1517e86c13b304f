//! Bounded waits: every wait in a test has a deadline and says, when it
//! runs out, what it waited for and what the state was.

use std::time::{Duration, Instant};

/// Polls `done` every 50 ms until it is true. Past `within` the test fails,
/// naming `what` and adding `context()` (a log tail, a status).
pub fn until(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
