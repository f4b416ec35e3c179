"""maml_helpers: the one source of the code that the course's notebooks share.

One module per concept:
  checks    - cmp() hand-vs-autograd comparison, finite-difference gradients
  graphs    - torchviz pictures (saved to images/), text views and memory of autograd graphs
  seeding   - seed_everything()
  timing    - interleaved, warmed-up timing with median and spread
  errors    - the clear, user-facing errors the commands print
  setting   - the range of every flag and the check of a run's setting, in one place
  omniglot  - finding, verifying, downloading and preprocessing Omniglot; splits
  tasks     - the N-way K-shot task sampler
  plotting  - pictures of characters, tasks and learning curves
  model     - the paper's 4-layer conv net, used functionally
  maml      - inner loop (adapt), meta-step, evaluation
  batched   - the same meta-gradient with all tasks of a meta-batch in one pass
  double_backward - convolution and BatchNorm with hand-derived second derivatives
  allocator - keep freed memory for reuse (glibc), a CPU speed-up
  distributed - a meta-batch shared by several processes (torchrun)
  checkpoint- atomic save and safe load of training state
  train / evaluate / bench - the command-line programs (python -m maml_helpers.train ...)
"""
from .checks import cmp, finite_difference_grad
from .seeding import seed_everything

__all__ = ["cmp", "finite_difference_grad", "seed_everything"]
