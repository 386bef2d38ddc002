"""Evidence that a selection helps: pre-fine-tune on it, then measure the target (issue 5).

``task`` holds labeled target tasks (train/test texts and labels); ``fast`` the add-k n-gram
view (seconds); ``encoder`` masked-LM pre-fine-tuning of a pretrained encoder then a classifier.
"""
