"""The words of a take: transcripts with word times, alignment, fillers, and the word diff."""
