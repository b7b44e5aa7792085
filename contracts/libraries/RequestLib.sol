// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice Why a request signature was rejected (the argument of RequestLib_BadSignature).
enum BadSignatureReason {
    // The signature is not exactly 65 bytes (r ‖ s ‖ v).
    WrongLength,
    // v is not 27 or 28.
    BadV,
    // s is in the upper half of the curve order (malleable twin of a low-s signature, EIP-2).
    HighS,
    // ecrecover found no signer (r or s zero or out of range, r not on the curve).
    NoSigner
}

/// @title RequestLib
/// @notice EIP-712 digests of the owner-signed requests and strict signature recovery
///         (docs/PROTOCOL.md, section 3.1).
/// @dev Domain: EIP712Domain(string name,string version,uint256 chainId,address verifyingContract) with name
///      "isoperp", version "1" and the Settlement contract as verifying contract.
///      digest = keccak256(0x1901 ‖ domainSeparator ‖ keccak256(abi.encode(typeHash, fields...))).
library RequestLib {
    /// @notice keccak256 of the EIP-712 domain type.
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @notice keccak256 of the Withdrawal request type.
    bytes32 internal constant WITHDRAWAL_TYPEHASH =
        keccak256("Withdrawal(uint32 accountId,address recipient,uint128 amount,uint64 nonce)");
    /// @notice keccak256 of the MarginTransfer request type.
    bytes32 internal constant MARGIN_TRANSFER_TYPEHASH =
        keccak256("MarginTransfer(uint32 accountId,uint16 marketId,int128 amount,uint64 nonce)");
    /// @notice keccak256 of the domain name "isoperp".
    bytes32 internal constant NAME_HASH = keccak256("isoperp");
    /// @notice keccak256 of the domain version "1".
    bytes32 internal constant VERSION_HASH = keccak256("1");

    /// @notice Largest s accepted: floor(secp256k1n / 2) (EIP-2 low-s rule).
    uint256 internal constant MAX_S = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice The signature is malformed, malleable or recovers no signer.
    /// @param reason What is wrong with it.
    error RequestLib_BadSignature(BadSignatureReason reason);

    /// @notice The EIP-712 domain separator for `chainId` and the Settlement contract `verifyingContract`.
    function domainSeparator(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chainId, verifyingContract));
    }

    /// @notice The digest an account owner signs to withdraw `amount` to `recipient`.
    function withdrawalDigest(bytes32 separator, uint32 accountId, address recipient, uint128 amount, uint64 nonce)
        internal
        pure
        returns (bytes32)
    {
        return _typedDigest(separator, keccak256(abi.encode(WITHDRAWAL_TYPEHASH, accountId, recipient, amount, nonce)));
    }

    /// @notice The digest an account owner signs to move `amount` into (> 0) or out of (< 0) a position.
    function marginTransferDigest(bytes32 separator, uint32 accountId, uint16 marketId, int128 amount, uint64 nonce)
        internal
        pure
        returns (bytes32)
    {
        return _typedDigest(
            separator, keccak256(abi.encode(MARGIN_TRANSFER_TYPEHASH, accountId, marketId, amount, nonce))
        );
    }

    /// @notice The signer of `digest`; reverts RequestLib_BadSignature unless `sig` is a well-formed 65-byte,
    ///         low-s `r ‖ s ‖ v` signature (v in {27, 28}) that recovers to a nonzero address.
    /// @param digest The signed EIP-712 digest.
    /// @param sig The signature r ‖ s ‖ v.
    function recover(bytes32 digest, bytes calldata sig) internal pure returns (address signer) {
        if (sig.length != 65) revert RequestLib_BadSignature(BadSignatureReason.WrongLength);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            // sig.length == 65 was checked: the words at offsets 0 and 32 and the byte at 64 are inside it.
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 0x20))
            v := byte(0, calldataload(add(sig.offset, 0x40)))
        }
        if (v != 27 && v != 28) revert RequestLib_BadSignature(BadSignatureReason.BadV);
        if (uint256(s) > MAX_S) revert RequestLib_BadSignature(BadSignatureReason.HighS);
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert RequestLib_BadSignature(BadSignatureReason.NoSigner);
    }

    /// @dev keccak256(0x1901 ‖ separator ‖ structHash).
    function _typedDigest(bytes32 separator, bytes32 structHash) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", separator, structHash));
    }
}
