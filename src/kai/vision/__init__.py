"""Photos made ready for recognition: decoding, preprocessing, and the backbones that embed them."""
