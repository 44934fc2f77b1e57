"""textgym: language-model text generation as Gymnasium environments."""
