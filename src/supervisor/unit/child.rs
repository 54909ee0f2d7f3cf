//! Where the state machine gets its child from: the real runtimes, or in unit tests a
//! scripted fake on tokio's clock. The only seam between the machine and processes.

use crate::runtime::{self, ExitInfo};
use nix::sys::signal::Signal;
use std::time::Duration;

/// How a supervisor starts children.
#[derive(Clone)]
pub(crate) enum Launcher {
    /// `runtime::spawn`: processes, containers, in-daemon tasks.
    Runtime,
    #[cfg(test)]
    Fake(fake::Script),
}

/// A started unit as the machine sees it.
pub(crate) enum UnitChild {
    Real(runtime::Child),
    #[cfg(test)]
    Fake(fake::FakeChild),
}

impl UnitChild {
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            UnitChild::Real(c) => c.pid(),
            #[cfg(test)]
            UnitChild::Fake(_) => None,
        }
    }

    pub(crate) fn container(&self) -> Option<String> {
        match self {
            UnitChild::Real(c) => c.container(),
            #[cfg(test)]
            UnitChild::Fake(_) => None,
        }
    }

    /// Waits until the child ends by itself. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> ExitInfo {
        match self {
            UnitChild::Real(c) => c.wait().await,
            #[cfg(test)]
            UnitChild::Fake(c) => c.wait().await,
        }
    }

    /// Stops the child and returns once it is gone.
    pub(crate) async fn stop(&mut self, signal: Signal, timeout: Duration) -> ExitInfo {
        match self {
            UnitChild::Real(c) => c.stop(signal, timeout).await,
            #[cfg(test)]
            UnitChild::Fake(c) => c.stop(signal),
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A child that "runs" for a scripted time on tokio's clock, then exits as scripted.

    use super::ExitInfo;
    use nix::sys::signal::Signal;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::time::Instant;

    /// One scripted run.
    #[derive(Debug, Clone)]
    pub(crate) enum Run {
        /// Runs until stopped.
        Forever,
        /// Runs this long, then ends with this exit.
        For(Duration, ExitInfo),
        /// The start itself fails.
        SpawnFails(String),
        /// Starting panics (a bug in the machine's environment).
        Panic(String),
    }

    #[derive(Default)]
    struct Inner {
        runs: VecDeque<Run>,
        /// When each start happened (tokio clock).
        starts: Vec<Instant>,
    }

    /// The runs to hand out, in order; once used up every start runs forever.
    #[derive(Clone, Default)]
    pub(crate) struct Script(Arc<Mutex<Inner>>);

    impl Script {
        pub(crate) fn new(runs: impl IntoIterator<Item = Run>) -> Self {
            let s = Script::default();
            s.0.lock().unwrap().runs.extend(runs);
            s
        }

        /// Start times so far.
        pub(crate) fn starts(&self) -> Vec<Instant> {
            self.0.lock().unwrap().starts.clone()
        }

        pub(crate) fn launch(&self) -> Result<FakeChild, String> {
            let run = {
                let mut i = self.0.lock().unwrap();
                i.starts.push(Instant::now());
                i.runs.pop_front().unwrap_or(Run::Forever)
            };
            match run {
                Run::Forever => Ok(FakeChild { end: None }),
                Run::For(d, exit) => Ok(FakeChild {
                    end: Some((Instant::now() + d, exit)),
                }),
                Run::SpawnFails(e) => Err(e),
                Run::Panic(m) => panic!("{m}"),
            }
        }
    }

    /// A running fake.
    pub(crate) struct FakeChild {
        end: Option<(Instant, ExitInfo)>,
    }

    impl FakeChild {
        pub(crate) async fn wait(&mut self) -> ExitInfo {
            match &self.end {
                Some((at, exit)) => {
                    tokio::time::sleep_until(*at).await;
                    exit.clone()
                }
                None => std::future::pending().await,
            }
        }

        pub(crate) fn stop(&mut self, signal: Signal) -> ExitInfo {
            ExitInfo::signal(signal as i32)
        }
    }
}
