"""The backends behind the fused ops, one module each: ``reference`` (torch), ``cpu`` (C++),
``cuda`` (CUDA C++) and ``triton``. Each turns tensors into the raw buffers its kernels take;
``omegabridge.ops.registry`` lists them and validation happens once, in ``omegabridge.ops``.
"""
