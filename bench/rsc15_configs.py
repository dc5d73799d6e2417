"""The rsc15_100k location and the two reference configurations of the library issue, shared by the benchmarks."""
import os

RSC15 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "rsc15_100k")
CONFIG_A = ("loss=bpr-max,final_act=elu-0.5,layers=100,batch_size=32,dropout_p_embed=0.0,dropout_p_hidden=0.0,"
            "learning_rate=0.05,momentum=0.0,n_sample=2048,sample_alpha=0.5,bpreg=1.0,constrained_embedding=True")
CONFIG_B = ("loss=cross-entropy,final_act=softmax,logq=1.0,constrained_embedding=True,layers=100,batch_size=32,"
            "dropout_p_embed=0.1,dropout_p_hidden=0.0,learning_rate=0.1,momentum=0.0,n_sample=2048,"
            "sample_alpha=0.75")
