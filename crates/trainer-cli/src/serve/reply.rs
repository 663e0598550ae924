//! An HTTP reply as the routes make it: status, content type and body.

/// An HTTP reply: status, content type and body.
pub(crate) struct Reply {
    /// 200, or the error's status.
    pub(crate) status: u16,
    /// The Content-Type.
    pub(crate) content_type: &'static str,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// A 200 reply.
    pub(crate) fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    /// An error: the status and a line of plain text saying what was wrong.
    pub(crate) fn error(status: u16, message: impl Into<String>) -> Self {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}
