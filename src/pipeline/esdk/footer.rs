//! The footer of a signed message: a u16 length and a DER ECDSA signature over header ‖ body.

use super::reader::Reader;
use super::EsdkError;

/// Reads the footer and returns the signature bytes; `r` must then be at the end of the message.
pub(crate) fn read_footer<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], EsdkError> {
    let offset = r.offset();
    let signature = r.u16_prefixed("footer signature")?;
    if signature.is_empty() {
        return Err(EsdkError::InvalidField {
            part: "footer",
            field: "signature length",
            value: 0,
            rule: "a signed suite needs a signature",
            offset,
        });
    }
    Ok(signature)
}

/// Appends a footer holding `signature`.
pub(crate) fn write_footer(signature: &[u8], out: &mut Vec<u8>) -> Result<(), EsdkError> {
    let len = u16::try_from(signature.len()).map_err(|_| EsdkError::Crypto("encode an oversized signature"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(signature);
    Ok(())
}
