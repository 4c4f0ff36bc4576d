"""TrustScore Stream: real-time NFT trust scores on Faust."""
