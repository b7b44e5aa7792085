// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
contract MockUSDC { uint8 public constant decimals = 6; }
