//! One pass of a batch over one connection: steps sent as the window
//! allows, replies taken as they come, until the queue is empty or the
//! connection is lost.

use std::collections::VecDeque;
use std::time::Duration;

use crate::client::pipeline::{Pipe, Window};
use crate::client::{ClientOptions, SMALL_FILE};
use crate::error::Error;

use super::answer::answer;
use super::send::send;
use super::sending::Sending;
use super::{
    fail, BatchOptions, BatchProgress, BatchReport, InFlight, Lost, Queued, Sent, Step, Unanswered,
    BUSY_PAUSE,
};

/// One pass of a batch over one connection.
pub(super) struct Pass<'a, 'p> {
    pub(super) pipe: Pipe<'a>,
    pub(super) window: Window,
    pub(super) in_flight: VecDeque<InFlight>,
    /// Steps to try once more, after the queue.
    pub(super) later: Vec<Queued>,
    /// The step whose reply was being read when the connection was lost.
    pub(super) unanswered: Option<InFlight>,
    pub(super) options: BatchOptions,
    pub(super) client: &'a ClientOptions,
    pub(super) report: &'a mut BatchReport,
    pub(super) progress: &'p mut dyn BatchProgress,
}

impl Pass<'_, '_> {
    pub(super) fn run(&mut self, queue: &mut VecDeque<Queued>) -> Result<(), Lost> {
        while let Some(next) = queue.pop_front() {
            if self.interrupted() {
                queue.push_front(next);
                return Err(Lost(Error::Interrupted { what: "batch" }));
            }
            let cost = Window::cost(next.step.remote());
            while !self.window.has_room(cost)
                || self.pipe.backlogged()
                || large_upload(&next.step) && !self.in_flight.is_empty()
            {
                if let Err(lost) = self.answer_oldest() {
                    // Not sent yet: it goes again with the rest.
                    queue.push_front(next);
                    return Err(lost);
                }
            }
            self.send(next, cost, queue)?;
            if queue.is_empty() {
                queue.extend(self.later.drain(..));
            }
            // Take replies that are here already, so the window seldom
            // has to wait for one.
            while self.pipe.has_input() && !self.in_flight.is_empty() {
                self.answer_oldest()?;
                if queue.is_empty() {
                    queue.extend(self.later.drain(..));
                }
            }
        }
        while !self.in_flight.is_empty() {
            self.answer_oldest()?;
            if self.in_flight.is_empty() && !self.later.is_empty() {
                // Steps to try once more (a name another upload held):
                // after a pause, through the same window.
                std::thread::sleep(BUSY_PAUSE);
                queue.extend(self.later.drain(..));
            }
        }
        Ok(())
    }

    fn interrupted(&self) -> bool {
        let flag = self.client.interrupt.as_ref();
        flag.is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Sends one step; a failure that is the step's alone is reported,
    /// one that loses the connection ends the pass.
    fn send(
        &mut self,
        next: Queued,
        cost: usize,
        queue: &mut VecDeque<Queued>,
    ) -> Result<(), Lost> {
        let (options, client) = (self.options, self.client);
        let sent = match send(&mut self.pipe, &next.step, options, client, self.progress) {
            Ok(sent) => sent,
            Err(Sending::Local(error)) => {
                fail(self.report, self.progress, &next.step, error);
                return Ok(());
            }
            Err(Sending::Lost(error)) => {
                queue.push_front(next);
                return Err(Lost(error));
            }
            Err(Sending::LostWith { file, cause }) => {
                // The step fails with what went wrong; the connection is
                // lost because of it, which the reconnect needs no more of.
                let lost = Error::NotStored {
                    file: file.clone(),
                    cause: None,
                };
                let why = Error::NotStored {
                    file,
                    cause: Some(Box::new(cause)),
                };
                fail(self.report, self.progress, &next.step, why);
                return Err(Lost(lost));
            }
        };
        self.window.sent(cost);
        self.in_flight.push_back(InFlight {
            step: next.step,
            cost,
            tries: next.tries,
            sent,
        });
        Ok(())
    }

    /// Reads and reports the reply to the oldest step in flight.
    fn answer_oldest(&mut self) -> Result<(), Lost> {
        let done = self
            .in_flight
            .pop_front()
            .expect("a step is in flight when a reply is awaited");
        self.window.answered(done.cost);
        let step = answer(
            &mut self.pipe,
            done,
            self.options,
            self.client,
            self.report,
            self.progress,
            &mut self.later,
        );
        step.map_err(|Unanswered(lost, step)| {
            self.unanswered = Some(*step);
            lost
        })
    }

    /// After Ctrl-C: the replies to what was already sent are read for a
    /// moment more, so that a file the server stored is counted as stored,
    /// never as not done. Downloads are not waited for (their bodies may
    /// be large); nor is anything once a reply is late or out of step.
    pub(super) fn settle_in_flight(&mut self) {
        if let Some(step) = self.unanswered.take() {
            self.window.sent(step.cost);
            self.in_flight.push_front(step);
        }
        let stream = self.pipe.stream();
        stream.set_interrupt(None);
        stream.restart(SETTLE, None);
        let _ = self.pipe.flush_out();
        while let Some(next) = self.in_flight.front() {
            if matches!(next.sent, Sent::Get { .. }) || self.answer_oldest().is_err() {
                break;
            }
        }
        let flag = self.client.interrupt.clone();
        self.pipe.stream().set_interrupt(flag);
    }
}

/// How long replies to steps already sent are awaited after Ctrl-C.
const SETTLE: Duration = Duration::from_secs(2);

fn large_upload(step: &Step) -> bool {
    matches!(step, Step::Upload(u) if u.size > SMALL_FILE)
}
