//! The gRPC codec of the contract: prost encoding, with one difference. A request that does not decode
//! (truncated protobuf, a string field that is not UTF-8) is the caller's malformed input, so it is
//! answered `INVALID_ARGUMENT` naming the field, not `INTERNAL` as tonic's default codec does. And a message
//! is encoded into a buffer reserved for its whole length at once: an Issue answer carries a ~160 kB PDF,
//! which tonic's 8 KiB starting buffer would otherwise reach by growing and copying.

use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

#[derive(Debug, Clone, Default)]
pub struct BclCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Codec for BclCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = BclEncoder<T>;
    type Decoder = BclDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        BclEncoder(ProstCodec::<T, U>::default().encoder())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BclDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

pub struct BclDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for BclDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // prost's messages name the message, field and problem (e.g. "invalid string value: data is not
        // UTF-8 encoded"), never the bytes.
        self.0.decode(buf).map_err(|s| Status::invalid_argument(s.message().to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

pub struct BclEncoder<T>(ProstEncoder<T>);

impl<T: Message> Encoder for BclEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        self.0.encode(item, buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
