//! Timing marks along the paths the benchmarks break down (a transaction query asked of a
//! member, a new block on its way to its holders), in test and bench builds only (cargo
//! feature `probes`; without it [`mark`] compiles to nothing).
//!
//! A mark is a label, an id that ties marks of one exchange together across pages (a wire
//! request id, a query id, a height) and the time: `performance.timeOrigin +
//! performance.now()`, milliseconds on the machine's clock with the page's sub-millisecond
//! resolution, so that marks of different tabs of one browser can be compared. The page keeps
//! the last [`MAX_MARKS`] and hands them over (and forgets them) with `probeTrace()`.

#[cfg(feature = "probes")]
mod imp {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use serde::Serialize;
    use wasm_bindgen::prelude::*;

    /// Most marks kept; the oldest go first.
    pub const MAX_MARKS: usize = 20_000;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = performance, js_name = now)]
        fn performance_now() -> f64;
    }

    /// One mark, as `probeTrace()` returns it.
    #[derive(Debug, Clone, Serialize)]
    pub struct Mark {
        /// Milliseconds since the Unix epoch (sub-millisecond resolution).
        pub t: f64,
        pub label: &'static str,
        pub id: f64,
    }

    thread_local! {
        static MARKS: RefCell<VecDeque<Mark>> = const { RefCell::new(VecDeque::new()) };
        static ORIGIN: f64 = js_sys::Reflect::get(
            &js_sys::global(),
            &JsValue::from_str("performance"),
        )
        .and_then(|p| js_sys::Reflect::get(&p, &JsValue::from_str("timeOrigin")))
        .ok()
        .and_then(|t| t.as_f64())
        .unwrap_or(0.0);
    }

    /// Now, on the machine's clock, with the page's finest resolution.
    pub fn now() -> f64 {
        ORIGIN.with(|origin| origin + performance_now())
    }

    /// Records `label` for exchange `id` now.
    pub fn mark(label: &'static str, id: u64) {
        let t = now();
        MARKS.with(|marks| {
            let mut marks = marks.borrow_mut();
            if marks.len() >= MAX_MARKS {
                marks.pop_front();
            }
            marks.push_back(Mark {
                t,
                label,
                id: id as f64,
            });
        });
    }

    /// Every mark kept, oldest first; they are forgotten.
    pub fn take() -> Vec<Mark> {
        MARKS.with(|marks| marks.borrow_mut().drain(..).collect())
    }
}

#[cfg(feature = "probes")]
pub use imp::{mark, now, take, Mark, MAX_MARKS};

/// Records `label` for exchange `id` (nothing without the `probes` feature).
#[cfg(not(feature = "probes"))]
#[inline(always)]
pub fn mark(_label: &'static str, _id: u64) {}
