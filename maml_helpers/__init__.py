"""maml_helpers: the one source of the code that the course's notebooks share.

One module per concept, by layer (a module imports only from its own layer or those above it
in this list; CONTRIBUTING.md, "Layers", and tests/test_layers.py):
  foundation     errors (clear user-facing errors), files (atomic writes), seeding, checks (cmp,
                 finite differences), timing (interleaved timing, a matmul yardstick), colab
  data and model model (the paper's conv net), omniglot (find, verify, cache; splits), setting
                 (every flag's range, a run's checks), tasks (the N-way K-shot sampler)
  MAML core      maml: adapt (inner loop), meta_gradient, meta_step, test-time adaptation
  speed          batched (all tasks in one pass), double_backward (hand-derived second
                 derivatives), allocator (glibc keeps freed memory)
  processes      distributed (a meta-batch shared by torchrun processes)
  library        checkpoint, evaluation (meta-test accuracy), cli (the commands' shared flags),
                 plotting, graphs (torchviz), sinusoid, widgets (ipywidgets for the notebooks)
  commands       train, evaluate, bench (python -m maml_helpers.train ...)
"""
from .checks import cmp, finite_difference_grad
from .seeding import seed_everything

__all__ = ["cmp", "finite_difference_grad", "seed_everything"]
