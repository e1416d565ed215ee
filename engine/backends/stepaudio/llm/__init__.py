"""The Step1 audio LLM: configuration, model, weight loading, text tokenizer, generation."""
