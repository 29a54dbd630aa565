//! Engine-level BitLocker tests on in-memory volumes: key parsing, sector
//! crypto round trips, conversion boundary, Vista recognition, no panics.
//! (Windows-made volumes and independent tools: image-builder/tests/bitlocker.rs.)

use rescue_engine::block::{BlockDevice, IoError, MemDisk};
use rescue_engine::formats::bitlocker::cipher::SectorCipher;
use rescue_engine::formats::bitlocker::create::{encrypt_in_place, CreateOptions};
use rescue_engine::formats::bitlocker::{self, BitLocker, BitLockerError, EncryptionMethod, UnlockKey};

const RP: &str = "236808-089419-192665-046024-405482-219285-362142-691911";

#[test]
fn recovery_password_checks_each_block_and_ignores_dashes() {
    let a = bitlocker::parse_recovery_password(RP).unwrap();
    let b = bitlocker::parse_recovery_password(&RP.replace('-', "")).unwrap();
    let c = bitlocker::parse_recovery_password(&RP.replace('-', " ")).unwrap();
    assert_eq!(*a, *b);
    assert_eq!(*a, *c);
    // 236808 / 11 = 21528 = 0x5418, little-endian first.
    assert_eq!(&a[..2], &[0x18, 0x54]);
    // Block 5 not divisible by 11.
    let e = bitlocker::parse_recovery_password("236808-089419-192665-046024-405483-219285-362142-691911").unwrap_err();
    assert_eq!(e, BitLockerError::RecoveryPasswordBlock { block: 5 });
    assert!(e.to_string().contains("block 5"));
    // Block 8 above 720896 (but divisible by 11).
    let e = bitlocker::parse_recovery_password("236808-089419-192665-046024-405482-219285-362142-720907").unwrap_err();
    assert_eq!(e, BitLockerError::RecoveryPasswordBlock { block: 8 });
    for bad in [
        "",
        "123",
        "236808-089419-192665-046024-405482-219285-362142-6919111",
        "23680x-089419-192665-046024-405482-219285-362142-691911",
    ] {
        assert_eq!(
            bitlocker::parse_recovery_password(bad).unwrap_err(),
            BitLockerError::RecoveryPasswordFormat,
            "{bad}"
        );
    }
}

#[test]
fn sector_ciphers_round_trip_and_depend_on_position() {
    let key: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7).wrapping_add(3)).collect();
    for method in [
        EncryptionMethod::AesCbc128,
        EncryptionMethod::AesCbc256,
        EncryptionMethod::AesCbc128Diffuser,
        EncryptionMethod::AesCbc256Diffuser,
        EncryptionMethod::XtsAes128,
        EncryptionMethod::XtsAes256,
    ] {
        for ss in [512u32, 4096] {
            let c = SectorCipher::new(method, &key, ss).unwrap();
            let plain: Vec<u8> = (0..ss as usize * 3).map(|i| (i * 13 % 251) as u8).collect();
            let mut buf = plain.clone();
            c.encrypt(ss as u64 * 10, &mut buf);
            assert_ne!(buf, plain);
            // Same data at another position encrypts differently.
            let mut other = plain.clone();
            c.encrypt(ss as u64 * 11, &mut other);
            assert_ne!(buf[..ss as usize], other[..ss as usize], "{method:?}");
            // Sector by sector equals all at once.
            let mut one = plain[ss as usize..2 * ss as usize].to_vec();
            c.encrypt(ss as u64 * 11, &mut one);
            assert_eq!(one, buf[ss as usize..2 * ss as usize]);
            c.decrypt(ss as u64 * 10, &mut buf);
            assert_eq!(buf, plain, "{method:?} {ss}");
        }
    }
    assert!(SectorCipher::new(EncryptionMethod::XtsAes256, &key[..32], 512).is_err());
    assert!(SectorCipher::new(EncryptionMethod::XtsAes128, &key, 520).is_err());
}

/// A fake NTFS volume: boot sector + pattern up to `fs` bytes, zeros after.
fn fake_ntfs(size: usize, fs: usize, ss: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    for (i, b) in v[..fs].iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2654435761).to_le_bytes()[1];
    }
    v[0..3].copy_from_slice(&[0xEB, 0x52, 0x90]);
    v[3..11].copy_from_slice(b"NTFS    ");
    v[11..13].copy_from_slice(&(ss as u16).to_le_bytes());
    v[13] = 8;
    v[0x28..0x30].copy_from_slice(&((fs / ss) as u64 - 1).to_le_bytes());
    v[510] = 0x55;
    v[511] = 0xAA;
    v
}

fn rng() -> impl FnMut(&mut [u8]) {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    move |b: &mut [u8]| {
        for x in b.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *x = (s >> 24) as u8;
        }
    }
}

fn make(plain: &[u8], ss: u32, method: EncryptionMethod, encrypted_size: Option<u64>) -> MemDisk {
    let mut d = MemDisk::new(plain.to_vec(), ss);
    let opts = CreateOptions {
        method,
        recovery_password: RP,
        password: None,
        description: "TEST C:",
        filetime: 132_000_000_000_000_000,
        encrypted_size,
    };
    encrypt_in_place(&mut d, &opts, &mut rng(), &mut |_, _| {}).unwrap();
    d
}

#[test]
fn half_converted_volume_reads_and_writes_on_both_sides_of_the_boundary() {
    let plain = fake_ntfs(4 << 20, 3 << 20, 512);
    let boundary = 1u64 << 20;
    let disk = make(&plain, 512, EncryptionMethod::AesCbc128, Some(boundary));
    let raw = disk.data.clone();
    // On disk: encrypted before the boundary, plain after it.
    assert_ne!(raw[8192..boundary as usize], plain[8192..boundary as usize]);
    assert_eq!(raw[boundary as usize..3 << 20], plain[boundary as usize..3 << 20]);
    let bl = BitLocker::open(disk).unwrap();
    assert_eq!(bl.metadata.encrypted_size, boundary);
    let mut u = bl.unlock(&UnlockKey::RecoveryPassword(RP)).unwrap();
    let mut all = vec![0u8; plain.len()];
    u.read_at(0, &mut all).unwrap();
    assert!(all == plain, "unlocked view differs from the plaintext");
    // A write straddling the boundary.
    let patch = vec![0xA5u8; 3000];
    let at = boundary - 1000;
    u.write_at(at, &patch).unwrap();
    let mut expected = plain.clone();
    expected[at as usize..at as usize + 3000].copy_from_slice(&patch);
    let raw = u.into_inner().data;
    assert_eq!(
        raw[boundary as usize..at as usize + 3000],
        patch[1000..],
        "after the boundary the disk holds plaintext"
    );
    assert_ne!(raw[at as usize..boundary as usize], patch[..1000], "before the boundary the disk holds ciphertext");
    let mut u = BitLocker::open(MemDisk::new(raw, 512)).unwrap().unlock(&UnlockKey::RecoveryPassword(RP)).unwrap();
    let mut all = vec![0u8; plain.len()];
    u.read_at(0, &mut all).unwrap();
    assert!(all == expected);
}

#[test]
fn four_k_sector_volume_round_trips() {
    let plain = fake_ntfs(4 << 20, 3 << 20, 4096);
    for m in [EncryptionMethod::XtsAes128, EncryptionMethod::AesCbc128Diffuser] {
        let disk = make(&plain, 4096, m, None);
        let mut u = BitLocker::open(disk).unwrap().unlock(&UnlockKey::RecoveryPassword(RP)).unwrap();
        assert_eq!(u.sector_size(), 4096);
        let mut all = vec![0u8; plain.len()];
        u.read_at(0, &mut all).unwrap();
        assert!(all == plain);
        // Unaligned write inside one 4 KiB sector.
        u.write_at(4096 * 7 + 5, b"hello").unwrap();
        let mut b = [0u8; 9];
        u.read_at(4096 * 7 + 3, &mut b).unwrap();
        assert_eq!(&b[2..7], b"hello");
        assert_eq!(b[..2], plain[4096 * 7 + 3..4096 * 7 + 5]);
    }
}

#[test]
fn wrong_keys_write_nothing() {
    let plain = fake_ntfs(4 << 20, 3 << 20, 512);
    let disk = make(&plain, 512, EncryptionMethod::XtsAes128, None);
    let before = disk.data.clone();
    let bl = BitLocker::open(disk).unwrap();
    let id = bl.protectors()[0].key_id;
    let e = bl
        .unlock_key(&UnlockKey::RecoveryPassword("000000-000011-000022-000033-000044-000055-000066-000077"))
        .err()
        .unwrap();
    assert_eq!(e, BitLockerError::WrongRecoveryPassword { key_ids: vec![id] });
    assert_eq!(e.to_string(), format!("wrong recovery password for Key ID {{{id}}}"));
    assert!(matches!(bl.unlock_key(&UnlockKey::Password("x")), Err(BitLockerError::NoProtector { .. })));
    assert!(matches!(bl.unlock_key(&UnlockKey::ClearKey), Err(BitLockerError::NoProtector { .. })));
    assert_eq!(bl.into_inner().data, before);
}

#[test]
fn vista_volumes_are_recognised_and_refused() {
    let mut v = vec![0u8; 1 << 20];
    v[0..3].copy_from_slice(&[0xEB, 0x52, 0x90]);
    v[3..11].copy_from_slice(b"-FVE-FS-");
    v[11..13].copy_from_slice(&512u16.to_le_bytes());
    v[510] = 0x55;
    v[511] = 0xAA;
    let mut d = MemDisk::new(v, 512);
    assert!(bitlocker::detect(&mut d).unwrap());
    assert_eq!(BitLocker::open(d).err().unwrap(), BitLockerError::VistaUnsupported);
}

#[test]
fn not_bitlocker_and_tiny_devices() {
    let mut d = MemDisk::new(vec![0u8; 100], 512);
    assert!(!bitlocker::detect(&mut d).unwrap());
    assert_eq!(BitLocker::open(d).err().unwrap(), BitLockerError::NotBitLocker);
    let plain = fake_ntfs(4 << 20, 3 << 20, 512);
    assert_eq!(BitLocker::open(MemDisk::new(plain, 512)).err().unwrap(), BitLockerError::NotBitLocker);
}

#[test]
fn out_of_range_io_is_an_error_not_a_panic() {
    let plain = fake_ntfs(4 << 20, 3 << 20, 512);
    let disk = make(&plain, 512, EncryptionMethod::XtsAes128, None);
    let mut u = BitLocker::open(disk).unwrap().unlock(&UnlockKey::RecoveryPassword(RP)).unwrap();
    let size = u.size();
    let mut b = [0u8; 16];
    assert!(matches!(u.read_at(size - 8, &mut b), Err(IoError::OutOfRange { .. })));
    assert!(matches!(u.write_at(u64::MAX - 4, &b), Err(IoError::OutOfRange { .. })));
}

#[test]
fn xts_matches_the_reference_implementation() {
    use aes::cipher::KeyInit;
    let key: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(29).wrapping_add(11)).collect();
    for (method, klen) in [(EncryptionMethod::XtsAes128, 16), (EncryptionMethod::XtsAes256, 32)] {
        for ss in [512usize, 4096] {
            let ours = SectorCipher::new(method, &key, ss as u32).unwrap();
            let plain: Vec<u8> = (0..ss * 4).map(|i| (i * 7 % 253) as u8).collect();
            let mut a = plain.clone();
            ours.encrypt(ss as u64 * 1000, &mut a);
            let mut b = plain.clone();
            if klen == 16 {
                let x = xts_mode::Xts128::new(
                    aes::Aes128::new_from_slice(&key[..16]).unwrap(),
                    aes::Aes128::new_from_slice(&key[16..32]).unwrap(),
                );
                x.encrypt_area(&mut b, ss, 1000, xts_mode::get_tweak_default);
            } else {
                let x = xts_mode::Xts128::new(
                    aes::Aes256::new_from_slice(&key[..32]).unwrap(),
                    aes::Aes256::new_from_slice(&key[32..64]).unwrap(),
                );
                x.encrypt_area(&mut b, ss, 1000, xts_mode::get_tweak_default);
            }
            assert_eq!(a, b, "{method:?} {ss}");
        }
    }
}

#[test]
fn fast_stretch_equals_the_plain_one() {
    use rescue_engine::formats::bitlocker::keys;
    let initial = [7u8; 32];
    let salt = [9u8; 16];
    assert_eq!(*keys::stretch(&initial, &salt), *keys::stretch_reference(&initial, &salt, keys::STRETCH_ROUNDS));
}

#[test]
fn stretch_takes_a_caller_compression_function() {
    use rescue_engine::formats::bitlocker::keys;
    fn counting(state: &mut [u32; 8], blocks: &[[u8; 64]; 2]) {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        keys::stretch_compress_default()(state, blocks)
    }
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let plain = fake_ntfs(4 << 20, 3 << 20, 512);
    let disk = make(&plain, 512, EncryptionMethod::XtsAes128, None);
    let mut bl = BitLocker::open(disk).unwrap();
    bl.set_compress(counting);
    assert!(bl.unlock_key(&UnlockKey::RecoveryPassword(RP)).is_ok());
    assert_eq!(CALLS.load(std::sync::atomic::Ordering::Relaxed), keys::STRETCH_ROUNDS);
}
