//! DHCPv4 replies (RFC 2131; options RFC 2132) as the firmware keeps them
//! after a PXE boot: the lease its boot DHCP got, which the agent reuses
//! instead of asking again as a client the server may not answer.
//!
//! The packet comes from the network through the firmware: every offset and
//! length is checked, and anything unexpected means "no lease".

/// Where the fixed BOOTP part ends and the magic cookie starts.
const COOKIE_AT: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const BOOTREPLY: u8 = 2;
const OPTION_PAD: u8 = 0;
const OPTION_SUBNET_MASK: u8 = 1;
const OPTION_ROUTER: u8 = 3;
const OPTION_END: u8 = 255;

/// An IPv4 lease: the address, its subnet mask and the first router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The client's address (`yiaddr`).
    pub address: [u8; 4],
    /// Option 1, contiguous.
    pub mask: [u8; 4],
    /// The first address of option 3, when given.
    pub router: Option<[u8; 4]>,
}

/// The lease a DHCP reply grants: `yiaddr`, option 1 and the first address
/// of option 3. `None` unless the packet is a BOOTREPLY with the magic
/// cookie, a unicast address and a contiguous subnet mask.
pub fn lease(packet: &[u8]) -> Option<Lease> {
    if *packet.first()? != BOOTREPLY || packet.get(COOKIE_AT..COOKIE_AT + 4)? != MAGIC_COOKIE {
        return None;
    }
    let address = ipv4(packet.get(16..20)?)?;
    let (mut mask, mut router) = (None, None);
    let mut at = COOKIE_AT + 4;
    while let Some(&code) = packet.get(at) {
        match code {
            OPTION_PAD => at += 1,
            OPTION_END => break,
            _ => {
                let len = usize::from(*packet.get(at + 1)?);
                let data = packet.get(at + 2..at + 2 + len)?;
                match code {
                    OPTION_SUBNET_MASK if mask.is_none() => mask = ipv4(data),
                    OPTION_ROUTER if router.is_none() => router = data.get(..4).and_then(ipv4),
                    _ => {}
                }
                at += 2 + len;
            }
        }
    }
    let mask = mask?;
    let contiguous = u32::from_be_bytes(mask).leading_ones() + u32::from_be_bytes(mask).trailing_zeros() == 32;
    let unicast = address != [0; 4] && address[0] < 224 && address != [255; 4];
    (contiguous && unicast).then_some(Lease { address, mask, router })
}

/// Four bytes as an address (exactly four).
fn ipv4(b: &[u8]) -> Option<[u8; 4]> {
    b.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A reply as dnsmasq sends it: yiaddr, then options.
    fn reply(yiaddr: [u8; 4], options: &[u8]) -> Vec<u8> {
        let mut p = alloc::vec![0u8; COOKIE_AT];
        p[0] = BOOTREPLY;
        p[16..20].copy_from_slice(&yiaddr);
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(options);
        p.resize(1472, 0);
        p
    }

    #[test]
    fn reads_address_mask_and_first_router() {
        let p =
            reply([198, 18, 0, 170], &[53, 1, 5, 0, 1, 4, 255, 255, 255, 0, 3, 8, 198, 18, 0, 1, 198, 18, 0, 2, 255]);
        let l = lease(&p).unwrap();
        assert_eq!(l, Lease { address: [198, 18, 0, 170], mask: [255, 255, 255, 0], router: Some([198, 18, 0, 1]) });
        let p = reply([10, 1, 2, 3], &[1, 4, 255, 255, 0, 0, 255]);
        assert_eq!(lease(&p).unwrap().router, None);
    }

    #[test]
    fn hostile_or_partial_replies_give_no_lease() {
        assert_eq!(lease(&[]), None);
        assert_eq!(lease(&reply([198, 18, 0, 9], &[255])), None, "no mask");
        assert_eq!(lease(&reply([0; 4], &[1, 4, 255, 255, 255, 0, 255])), None, "no address");
        assert_eq!(lease(&reply([224, 0, 0, 1], &[1, 4, 255, 255, 255, 0, 255])), None, "multicast");
        assert_eq!(lease(&reply([198, 18, 0, 9], &[1, 4, 255, 0, 255, 0, 255])), None, "holes in the mask");
        assert_eq!(lease(&reply([198, 18, 0, 9], &[1, 3, 255, 255, 255, 255])), None, "short mask");
        let mut p = reply([198, 18, 0, 9], &[1, 4, 255, 255, 255, 0, 255]);
        p[0] = 1;
        assert_eq!(lease(&p), None, "a request, not a reply");
        // An option running off the end, at every length.
        let full = reply([198, 18, 0, 9], &[3, 200, 1, 2, 3, 4]);
        for n in 0..full.len() {
            let _ = lease(&full[..n]);
        }
        assert_eq!(lease(&full[..COOKIE_AT + 4 + 6]), None);
    }
}
