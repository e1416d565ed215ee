"""The stepaudio backend: Step-Audio-EditX checkpoints run by our own code."""
