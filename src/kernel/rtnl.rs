//! The rtnetlink session: one connection per thread (so one per network namespace,
//! since namespaces are entered on dedicated threads), driven by a tokio
//! current-thread runtime with IO enabled that lives on the same thread.
//!
//! Only the mutations live here: RTM_SETLINK for the MTU, RTM_NEWQDISC / RTM_DELQDISC
//! for root qdiscs. Reads (the link and qdisc dumps) go through the lighter
//! [`crate::kernel::rtdump`], which shares [`NlError`] with this module. Requests are built by hand rather
//! than through rtnetlink's request builders so that every attribute that goes to
//! the kernel is visible here (rollback sends back exact option bytes). Errors carry
//! the kernel's extended-ack message when it gives one: the socket asks for
//! NETLINK_EXT_ACK with NETLINK_CAP_ACK, so an error's payload is the 16-byte header
//! of the request followed by the ext-ack attributes.

use std::cell::RefCell;
use std::fmt;

use futures::StreamExt;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::tc::{TcAttribute, TcMessage};
use rtnetlink::sys::AsyncSocket;

use crate::domain::qdisc::{QdiscSpec, TC_H_ROOT};

/// A failed netlink request: errno and the kernel's explanation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Positive errno; 0 when the failure was not a kernel error (socket, decode).
    pub errno: i32,
    pub message: String,
    /// The kernel's extended-ack message.
    pub ext_ack: Option<String>,
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(ack) = &self.ext_ack {
            write!(f, " (kernel: {ack})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NlError {}

impl NlError {
    pub(crate) fn local(message: String) -> NlError {
        NlError {
            errno: 0,
            message,
            ext_ack: None,
        }
    }

    fn from_rtnetlink(e: rtnetlink::Error) -> NlError {
        match e {
            rtnetlink::Error::NetlinkError(msg) => {
                let errno = msg.raw_code().abs();
                let io = std::io::Error::from_raw_os_error(errno);
                let message = match errno {
                    libc::EPERM | libc::EACCES => {
                        format!("{io}: changing links and qdiscs needs root (CAP_NET_ADMIN)")
                    }
                    _ => io.to_string(),
                };
                NlError {
                    errno,
                    message,
                    ext_ack: ext_ack_message(&msg.header),
                }
            }
            other => NlError::local(other.to_string()),
        }
    }
}

/// NLMSGERR_ATTR_MSG from the attributes after the capped request header (the
/// payload of NLMSG_ERROR after its error code).
pub(crate) fn ext_ack_message(payload: &[u8]) -> Option<String> {
    const NLMSG_HDRLEN: usize = 16;
    ext_ack_in(payload.get(NLMSG_HDRLEN..)?)
}

/// NLMSGERR_ATTR_MSG from ext-ack attributes.
pub(crate) fn ext_ack_in(payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let text = crate::kernel::nlattr::attributes(payload)
        .map_while(Result::ok)
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)?
        .1;
    let text = text.split(|b| *b == 0).next().unwrap_or_default();
    Some(String::from_utf8_lossy(text).into_owned()).filter(|s| !s.is_empty())
}

pub type NlResult<T> = Result<T, NlError>;

/// A connection and the runtime that drives it.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's session, opening it on first use.
pub fn with_session<T>(f: impl FnOnce(&mut Session) -> NlResult<T>) -> NlResult<T> {
    SESSION.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Session::open()?);
        }
        match slot.as_mut() {
            Some(session) => f(session),
            None => Err(NlError::local("no netlink session".into())),
        }
    })
}

impl Session {
    fn open() -> NlResult<Session> {
        let io = |what: &str, e: std::io::Error| NlError::local(format!("{what}: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| io("cannot start the netlink runtime", e))?;
        let _guard = runtime.enter();
        let (mut connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| io("cannot open a netlink socket", e))?;
        let socket = connection.socket_mut().socket_mut();
        // Ask for the kernel's explanations; without CAP_ACK their offset would depend
        // on the echoed request, so ask for both or neither.
        if socket.set_cap_ack(true).is_ok() {
            let _ = socket.set_ext_ack(true);
        }
        runtime.spawn(connection);
        Ok(Session { runtime, handle })
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> NlResult<()> {
        let mut req = NetlinkMessage::from(message);
        req.header.flags = NLM_F_REQUEST | flags;
        let mut handle = self.handle.clone();
        self.runtime.block_on(async move {
            let mut replies = handle.request(req).map_err(NlError::from_rtnetlink)?;
            while let Some(reply) = replies.next().await {
                if let NetlinkPayload::Error(e) = reply.payload
                    && e.code.is_some()
                {
                    return Err(NlError::from_rtnetlink(rtnetlink::Error::NetlinkError(e)));
                }
            }
            Ok(())
        })
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> NlResult<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(message), NLM_F_ACK)
    }

    /// Deletes the root qdisc of a link, naming its kind and handle so the kernel
    /// refuses when the root qdisc is no longer that one.
    pub fn delete_root_qdisc(&mut self, index: u32, spec: &QdiscSpec) -> NlResult<()> {
        let mut message = TcMessage::with_index(index_i32(index)?);
        message.header.parent = TC_H_ROOT.into();
        message.header.handle = spec.handle.into();
        message
            .attributes
            .push(TcAttribute::Kind(spec.kind.clone()));
        self.request(RouteNetlinkMessage::DelQueueDiscipline(message), NLM_F_ACK)
    }

    /// Creates a root qdisc from recorded kind, handle and raw option bytes; fails
    /// if a qdisc with a handle is already there (NLM_F_EXCL).
    pub fn create_root_qdisc(&mut self, index: u32, spec: &QdiscSpec) -> NlResult<()> {
        let mut message = TcMessage::with_index(index_i32(index)?);
        message.header.parent = spec.parent.into();
        message.header.handle = spec.handle.into();
        message
            .attributes
            .push(TcAttribute::Kind(spec.kind.clone()));
        let dumped = crate::domain::qdisc::from_hex(&spec.options).ok_or_else(|| {
            NlError::local(format!("recorded options of {} are not hex", spec.kind))
        })?;
        let bytes = crate::domain::qdisc::creation_options(&spec.kind, &dumped);
        if !bytes.is_empty() {
            const TCA_OPTIONS: u16 = 2;
            // `TcAttribute::Options` would wrap the bytes in a second attribute header;
            // the kernel wants them as the value of TCA_OPTIONS itself.
            message
                .attributes
                .push(TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, bytes)));
        }
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}

fn index_i32(index: u32) -> NlResult<i32> {
    i32::try_from(index)
        .map_err(|_| NlError::local(format!("interface index {index} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_message_is_read_after_the_capped_header() {
        let mut payload = vec![0u8; 16];
        let text = b"mtu less than device minimum\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(&payload).as_deref(),
            Some("mtu less than device minimum")
        );
        assert_eq!(ext_ack_message(&payload[..16]), None);
        assert_eq!(ext_ack_message(&[0xff; 21]), None);
    }
}
