// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// A minimal ERC-721 for the chain source's tests: only what emits the standard
/// `Transfer(address,address,uint256)` event (mint, transfer, burn) and an approval so a
/// marketplace contract can move a token in a paid transaction.
contract TestNFT {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);

    mapping(uint256 => address) public ownerOf;
    mapping(uint256 => address) public getApproved;

    function mint(address to, uint256 tokenId) external {
        require(to != address(0) && ownerOf[tokenId] == address(0), "bad mint");
        ownerOf[tokenId] = to;
        emit Transfer(address(0), to, tokenId);
    }

    function approve(address spender, uint256 tokenId) external {
        require(ownerOf[tokenId] == msg.sender, "not owner");
        getApproved[tokenId] = spender;
        emit Approval(msg.sender, spender, tokenId);
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        address owner = ownerOf[tokenId];
        require(owner == from && to != address(0), "bad transfer");
        require(msg.sender == owner || msg.sender == getApproved[tokenId], "not allowed");
        ownerOf[tokenId] = to;
        delete getApproved[tokenId];
        emit Transfer(from, to, tokenId);
    }

    function burn(uint256 tokenId) external {
        address owner = ownerOf[tokenId];
        require(owner == msg.sender, "not owner");
        delete ownerOf[tokenId];
        delete getApproved[tokenId];
        emit Transfer(owner, address(0), tokenId);
    }
}

/// Sells an approved token: the buyer's transaction carries the price, which goes to the seller.
contract TestMarket {
    function buy(TestNFT nft, address seller, uint256 tokenId) external payable {
        nft.transferFrom(seller, msg.sender, tokenId);
        payable(seller).transfer(msg.value);
    }
}
