//! A [`StreamMuxer`] that wraps every substream it opens or accepts and passes everything else
//! straight through: the shape shared by Shoal's transport workarounds
//! ([`crate::SmallWrites`], [`crate::EagerReads`]), which differ only in their substreams.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

/// Turns one substream of the inner muxer into the substream the wrapper hands out.
pub trait WrapSubstream<S> {
    /// The wrapped substream.
    type Wrapped: AsyncRead + AsyncWrite;

    /// Wraps `substream`.
    fn wrap(&self, substream: S) -> Self::Wrapped;

    /// Wraps a substream the remote opened (by default as [`WrapSubstream::wrap`]).
    fn wrap_inbound(&self, substream: S) -> Self::Wrapped {
        self.wrap(substream)
    }

    /// Wraps a substream this end opened (by default as [`WrapSubstream::wrap`]).
    fn wrap_outbound(&self, substream: S) -> Self::Wrapped {
        self.wrap(substream)
    }
}

/// A muxer whose substreams are those of `inner`, each wrapped by `W`.
#[derive(Debug)]
pub struct WrapSubstreams<M, W> {
    inner: M,
    wrapper: W,
}

impl<M, W> WrapSubstreams<M, W> {
    /// Wraps `inner`'s substreams with `wrapper`.
    pub fn with(inner: M, wrapper: W) -> Self {
        Self { inner, wrapper }
    }

    /// The wrapped muxer.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

impl<M, W> StreamMuxer for WrapSubstreams<M, W>
where
    M: StreamMuxer + Unpin,
    W: WrapSubstream<M::Substream> + Unpin,
{
    type Substream = W::Wrapped;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_inbound(cx)
            .map_ok(|s| this.wrapper.wrap_inbound(s))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|s| this.wrapper.wrap_outbound(s))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
