//! The codec of the generated servers: prost's, except that a request that
//! does not decode is the caller's fault. prost's codec answers INTERNAL
//! ("failed to decode Protobuf message"), which tells a client with a bug,
//! such as a string field holding bytes that are not UTF-8, to blame the
//! server; this one answers INVALID_ARGUMENT naming the field.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// Encodes replies like prost's codec; see [`RequestDecoder`].
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Decodes a request; a malformed one is INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| malformed(&e))
    }
}

fn malformed(e: &prost::DecodeError) -> Status {
    // prost names the message and field, e.g. "failed to decode Protobuf
    // message: LoginRequest.username: invalid string value: data is not
    // UTF-8 encoded".
    Status::invalid_argument(format!("malformed request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_invalid_argument_naming_the_field() {
        // LoginRequest { username (field 2): 0xff 0xfe }
        let bytes: &[u8] = &[0x12, 0x02, 0xff, 0xfe];
        let e = crate::api::proto::LoginRequest::decode(bytes).unwrap_err();
        let status = malformed(&e);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("LoginRequest.username"),
            "{status}"
        );
        assert!(status.message().contains("UTF-8"), "{status}");
    }
}
