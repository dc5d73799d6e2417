"""The small GRU4Rec configurations the training tests run, one per loss family and embedding mode.

``BPR_MAX`` (momentum, hidden dropout, shared embedding), ``XE_LOGQ_SEPARATE`` (cross-entropy with logQ, a
separate input embedding) and ``TOP1_NONE`` (TOP1-max, no embedding): ``PARAM_VARIANTS`` in that order.
"""
from gru4rec_tf.params import GRU4RecParams

BPR_MAX = GRU4RecParams.from_string("loss=bpr-max,final_act=elu-0.5,layers=16,batch_size=8,n_sample=16,"
                                    "learning_rate=0.1,momentum=0.3,dropout_p_hidden=0.1,n_epochs=3")
XE_LOGQ_SEPARATE = GRU4RecParams.from_string("loss=cross-entropy,logq=1.0,layers=12,batch_size=8,n_sample=16,"
                                             "constrained_embedding=False,embedding=6,n_epochs=2")
TOP1_NONE = GRU4RecParams.from_string("loss=top1-max,final_act=linear,layers=12,batch_size=8,n_sample=8,"
                                      "constrained_embedding=False,embedding=0,n_epochs=2")
PARAM_VARIANTS = [BPR_MAX, XE_LOGQ_SEPARATE, TOP1_NONE]
