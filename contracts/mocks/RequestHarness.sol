// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {RequestLib} from "../libraries/RequestLib.sol";

/// @title RequestHarness
/// @notice Test-only: exposes RequestLib so Python can compare it with isoperp.protocol.signing.
contract RequestHarness {
    function typeHashes() external pure returns (bytes32 domain, bytes32 withdrawal, bytes32 marginTransfer) {
        return (RequestLib.DOMAIN_TYPEHASH, RequestLib.WITHDRAWAL_TYPEHASH, RequestLib.MARGIN_TRANSFER_TYPEHASH);
    }

    function domainSeparator(uint256 chainId, address verifyingContract) external pure returns (bytes32) {
        return RequestLib.domainSeparator(chainId, verifyingContract);
    }

    function withdrawalDigest(bytes32 separator, uint32 accountId, address recipient, uint128 amount, uint64 nonce)
        external
        pure
        returns (bytes32)
    {
        return RequestLib.withdrawalDigest(separator, accountId, recipient, amount, nonce);
    }

    function marginTransferDigest(bytes32 separator, uint32 accountId, uint16 marketId, int128 amount, uint64 nonce)
        external
        pure
        returns (bytes32)
    {
        return RequestLib.marginTransferDigest(separator, accountId, marketId, amount, nonce);
    }

    function recover(bytes32 digest, bytes calldata sig) external pure returns (address) {
        return RequestLib.recover(digest, sig);
    }
}
