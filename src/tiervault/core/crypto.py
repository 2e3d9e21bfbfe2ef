"""Keys, keyed hashes and the AEAD. See docs/format.md, "Keys" and "Encryption".

* Chunk ids: BLAKE3 keyed with the repository's 32-byte id key over the plaintext chunk.
* Object names of stored files: plain (unkeyed) BLAKE3 of the stored bytes, so storage integrity can be
  checked without any key.
* Encryption: AES-256-GCM. Every sealed unit (a pack, an index file, a snapshot...) carries a random
  16-byte salt; its key is BLAKE3-derived from the master encryption key and that salt, and its nonces
  are a counter within the unit. A nonce can therefore only repeat if two 128-bit salts collide.
* Password wrapping: scrypt (memory-hard) derives a key-encryption key that seals the master keys.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import ClassVar

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tiervault.errors import ParameterError

KEY_SIZE = 32
SALT_SIZE = 16
TAG_SIZE = 16
ID_SIZE = 32

_UNIT_KEY_CONTEXT = "tiervault 2026-11-26 unit encryption key v1"
_TREE_KEY_CONTEXT = "tiervault 2026-11-26 tree id key v1"


class AuthenticationFailed(Exception):
    """The AEAD tag did not verify (wrong key or damaged bytes). Callers turn it into IntegrityError."""


@dataclass(frozen=True, slots=True)
class MasterKeys:
    """The repository secrets, random at init, stored only wrapped in key slots."""

    encryption: bytes  # 32 bytes: root of every unit key
    chunk_id: bytes  # 32 bytes: BLAKE3 key for file chunk ids
    chunker_seed: int  # 63 bits; seeds FastCDC's gear table so cut points reveal less about content

    @classmethod
    def generate(cls) -> MasterKeys:
        return cls(
            encryption=os.urandom(KEY_SIZE),
            chunk_id=os.urandom(KEY_SIZE),
            chunker_seed=(int.from_bytes(os.urandom(8), "little") >> 1) or 1,  # 63 bits (FastCDC limit)
        )

    @property
    def tree_id(self) -> bytes:
        """The key of tree ids: derived, so a tree and a file chunk with equal bytes never share an
        id (trees must stay in metadata packs)."""
        return blake3.blake3(self.chunk_id, derive_key_context=_TREE_KEY_CONTEXT).digest()


def object_hash(data: bytes | memoryview) -> str:
    """The storage name hash: unkeyed BLAKE3, 64 hex digits."""
    return blake3.blake3(data, max_threads=1).hexdigest()


def chunk_id(id_key: bytes, data: bytes | memoryview) -> bytes:
    """The keyed 32-byte id of a plaintext chunk."""
    return blake3.blake3(data, key=id_key).digest()


def _nonce(domain: int, counter: int) -> bytes:
    return struct.pack(">IQ", domain, counter)


class UnitCipher:
    """AES-256-GCM for one sealed unit (a pack or an object), keyed by the master key and the unit salt.

    Nonces are (domain, counter) pairs chosen by the caller; within one unit each pair is used once.
    """

    __slots__ = ("_aead", "salt")

    def __init__(self, master_encryption_key: bytes, salt: bytes) -> None:
        if len(salt) != SALT_SIZE:
            raise ValueError("unit salt must be 16 bytes")
        key = blake3.blake3(master_encryption_key + salt, derive_key_context=_UNIT_KEY_CONTEXT).digest()
        self._aead = AESGCM(key)
        self.salt = salt

    @classmethod
    def new(cls, master_encryption_key: bytes) -> UnitCipher:
        return cls(master_encryption_key, os.urandom(SALT_SIZE))

    def seal(self, domain: int, counter: int, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        return self._aead.encrypt(_nonce(domain, counter), plaintext, aad)

    def seal_into(
        self, domain: int, counter: int, plaintext: bytes | memoryview, aad: bytes, out: memoryview
    ) -> None:
        """Like :meth:`seal`, writing ciphertext and tag into ``out`` (exactly len(plaintext)+16 bytes)."""
        self._aead.encrypt_into(_nonce(domain, counter), plaintext, aad, out)

    def open(self, domain: int, counter: int, ciphertext: bytes | memoryview, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(_nonce(domain, counter), ciphertext, aad)
        except InvalidTag as exc:
            raise AuthenticationFailed from exc


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost: n=2**log_n, r, p. The default costs ~32 MiB and ~0.1 s here."""

    log_n: int = 15
    r: int = 8
    p: int = 1

    #: the accepted ranges (inclusive); the CLI's ``--kdf-log-n`` takes its range from here
    LOG_N_MIN: ClassVar[int] = 10
    LOG_N_MAX: ClassVar[int] = 20
    R_MAX: ClassVar[int] = 16
    P_MAX: ClassVar[int] = 16
    MAX_MEMORY: ClassVar[int] = 1 << 30

    def __post_init__(self) -> None:
        # bounded so that a hostile key slot cannot make open() allocate more than 1 GiB or spin
        for name, value in (("log_n", self.log_n), ("r", self.r), ("p", self.p)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(f"scrypt {name} must be an integer, not {value!r}")
        if not (
            self.LOG_N_MIN <= self.log_n <= self.LOG_N_MAX
            and 1 <= self.r <= self.R_MAX
            and 1 <= self.p <= self.P_MAX
        ):
            raise ParameterError(
                f"scrypt parameters out of range (log_n {self.LOG_N_MIN}..{self.LOG_N_MAX}, "
                f"r 1..{self.R_MAX}, p 1..{self.P_MAX})"
            )
        if 128 * self.r * 2**self.log_n > self.MAX_MEMORY:
            raise ParameterError("scrypt parameters need more than 1 GiB of memory")

    def derive(self, password: bytes, salt: bytes) -> bytes:
        return Scrypt(salt=salt, length=KEY_SIZE, n=2**self.log_n, r=self.r, p=self.p).derive(password)


def wrap(kek: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Seal ``plaintext`` under a key-encryption key with a random nonce; return (nonce, ciphertext)."""
    nonce = os.urandom(12)
    return nonce, AESGCM(kek).encrypt(nonce, plaintext, aad)


def unwrap(kek: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise AuthenticationFailed from exc
