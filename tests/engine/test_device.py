

def test_one_blas_thread_limits_numpys_blas_for_the_whole_process():
    """A Predictor calls it: OpenBLAS's spinning threads took a core from the models that followed."""
    import threading

    import numpy as np
    from threadpoolctl import threadpool_info

    from mmfer.engine.device import one_blas_thread

    one_blas_thread()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas), blas
    seen = []  # OpenBLAS's limit is the process's, so a helper thread sees it too
    t = threading.Thread(target=lambda: seen.append([i["num_threads"] for i in threadpool_info()
                                                     if i["user_api"] == "blas"]))
    t.start()
    t.join()
    assert seen == [[1] * len(blas)]
    a = np.random.default_rng(0).normal(size=(64, 64))
    np.testing.assert_allclose(a @ np.linalg.inv(a), np.eye(64), atol=1e-8)
