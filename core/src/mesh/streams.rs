//! Attached streams: any ordered, reliable byte stream (a TCP socket, a pipe) joined to
//! the member's store as one more link, as the original `expandMesh(targetId, dc)` did
//! with any channel. The stream speaks a sync codec with [`Framing::Stream`]
//! (scuttlebutt's JSON lines by default), so a JavaScript scuttlebutt `Model` can sync
//! with the room through it. A stream has no peer: no announce, no pings, no retries;
//! it lives until either side ends it.

use super::*;

impl Mesh {
    /// Attaches a byte stream speaking `codec`: the sync starts now (our digest is the
    /// first output for it, a [`MeshOutput::Stream`]). Feed what it receives to
    /// [`stream_data`](Self::stream_data) and its end to
    /// [`stream_end`](Self::stream_end). Refused (`None`) once the mesh is closed.
    pub fn attach(&mut self, now: Instant, codec: Codec) -> Option<LinkId> {
        self.last_now = self.last_now.max(now);
        if self.closed {
            return None;
        }
        let link = self.replica.open_link(codec, Framing::Stream);
        self.streams.insert(link);
        Some(link)
    }

    /// Bytes arrived on an attached stream.
    pub fn stream_data(&mut self, now: Instant, link: LinkId, data: &[u8]) {
        self.last_now = self.last_now.max(now);
        if self.streams.contains(&link) {
            self.replica.handle_input(now, link, data);
        }
    }

    /// An attached stream ended (closed by its remote, or failed).
    pub fn stream_end(&mut self, now: Instant, link: LinkId) {
        self.last_now = self.last_now.max(now);
        if self.streams.remove(&link) {
            self.replica.handle_end(now, link);
            self.flush_replica();
            self.replica.close_link(link);
        }
    }

    /// Attached streams, by link.
    pub fn streams(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.streams.iter().copied()
    }

    /// Stops a stream from our side: what it had to send goes first, then the close.
    pub(super) fn detach(&mut self, link: LinkId) {
        if self.streams.contains(&link) {
            self.flush_replica();
            self.streams.remove(&link);
            self.replica.close_link(link);
            self.out.push_back(MeshOutput::CloseStream(link));
        }
    }

    /// Where replica bytes for `link` go: a peer's data channel or an attached stream.
    pub(super) fn route(&self, link: LinkId, data: Vec<u8>) -> Option<MeshOutput> {
        if let Some(peer) = self.links.get(&link) {
            Some(MeshOutput::Transmit {
                peer: PeerId::checked(peer),
                data,
            })
        } else if self.streams.contains(&link) {
            Some(MeshOutput::Stream { link, data })
        } else {
            None
        }
    }
}
