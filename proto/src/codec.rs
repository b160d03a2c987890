//! The gRPC codec of the contract: prost encoding, with one difference. A request that does not decode
//! (truncated protobuf, a string field that is not UTF-8) is the caller's malformed input, so it is
//! answered `INVALID_ARGUMENT` naming the field, not `INTERNAL` as tonic's default codec does.

use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
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
    type Encoder = ProstEncoder<T>;
    type Decoder = BclDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
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
