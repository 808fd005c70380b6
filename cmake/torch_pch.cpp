// translation unit that owns the LibTorch precompiled header (see TorchPch.cmake)
