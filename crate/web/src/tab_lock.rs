//! One identity per tab: a tab claims a numbered *slot* with the Web Locks API and uses the
//! database (and so the libp2p identity) of that slot. Two tabs of one origin never hold the
//! same slot at once; a reloaded tab gets its old slot back once the previous page is gone,
//! so it resumes the same identity and data (the product's "a reloaded tab resumes its place").

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export async function claimSlot(prefix, maxSlots) {
  if (!globalThis.navigator || !navigator.locks) {
    throw new Error("the Web Locks API is not available (it needs a secure context: https or localhost)");
  }
  for (let slot = 0; slot < maxSlots; slot++) {
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const got = await new Promise((resolve, reject) => {
      navigator.locks
        .request(`${prefix}:${slot}`, { ifAvailable: true }, (lock) => {
          resolve(lock !== null);
          return lock === null ? undefined : held;
        })
        .catch(reject);
    });
    if (got) return { slot, release };
  }
  return null;
}
"#)]
extern "C" {
    #[wasm_bindgen(catch, js_name = claimSlot)]
    async fn claim_slot_js(prefix: &str, max_slots: u32) -> Result<JsValue, JsValue>;
}

/// How many tabs of one origin can run a node for the same database name at once.
pub const MAX_SLOTS: u32 = 64;

/// Why no slot could be claimed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TabLockError {
    #[error("Web Locks failed: {0}")]
    Locks(String),
    #[error("all {0} node slots of this origin are held by other tabs")]
    AllTaken(u32),
}

/// A held slot; the lock is released by [`SlotLock::release`] or when the page goes away.
#[derive(Debug)]
pub struct SlotLock {
    pub slot: u32,
    release: js_sys::Function,
}

impl SlotLock {
    /// Claims the lowest free slot named `prefix:N`.
    pub async fn claim(prefix: &str) -> Result<SlotLock, TabLockError> {
        let held = claim_slot_js(prefix, MAX_SLOTS)
            .await
            .map_err(|e| TabLockError::Locks(format!("{e:?}")))?;
        if held.is_null() {
            return Err(TabLockError::AllTaken(MAX_SLOTS));
        }
        let field = |name: &str| js_sys::Reflect::get(&held, &JsValue::from_str(name));
        let slot = field("slot")
            .ok()
            .and_then(|v| v.as_f64())
            .ok_or_else(|| TabLockError::Locks("no slot number".into()))?;
        let release = field("release")
            .ok()
            .and_then(|v| v.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| TabLockError::Locks("no release function".into()))?;
        Ok(SlotLock {
            slot: slot as u32,
            release,
        })
    }

    /// Gives the slot back so that another tab may take it.
    pub fn release(&self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    async fn two_holders_never_share_a_slot_and_a_released_slot_is_reused() {
        let first = SlotLock::claim("shoal-test-slots").await.unwrap();
        let second = SlotLock::claim("shoal-test-slots").await.unwrap();
        assert_eq!((first.slot, second.slot), (0, 1));
        first.release();
        // The lock manager frees the slot once the release promise settles.
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&JsValue::NULL))
            .await
            .unwrap();
        let third = SlotLock::claim("shoal-test-slots").await.unwrap();
        assert_eq!(
            third.slot, 0,
            "a reloaded tab gets its slot (and identity) back"
        );
        second.release();
        third.release();
    }
}
