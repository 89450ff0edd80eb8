"""Looking inside a learned soft prompt (lesson 06): which real tokens are its vectors closest to?"""
import torch
import torch.nn.functional as F


@torch.no_grad()
def nearest_tokens(prompt_vectors, word_embeddings, tokenizer, k=3):
    """For each soft-prompt vector, the k vocabulary tokens whose embeddings point the most the same way
    (cosine similarity), as [[(token, similarity), ...], ...]. A soft prompt is free to leave the vocabulary:
    a low similarity means the vector is no longer near any real token."""
    similarity = F.normalize(prompt_vectors.float(), dim=-1) @ F.normalize(word_embeddings.float(), dim=-1).T
    values, ids = similarity.topk(k, dim=-1)
    return [[(tokenizer.decode([i]), v) for i, v in zip(row_ids.tolist(), row_values.tolist())]
            for row_ids, row_values in zip(ids, values)]
